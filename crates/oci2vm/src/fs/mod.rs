//! Writers from the merged tree: `ext4` (a filesystem image written directly, no mount) and
//! `cpio` (a newc initramfs archive).

pub mod cpio;
pub mod ext4;
