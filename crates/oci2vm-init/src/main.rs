//! oci2vm-init: PID 1 of an oci2vm guest. The boot sequence reads top to bottom.

fn main() {}
