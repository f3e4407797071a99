//! The host<->guest contract of oci2vm (see `docs/guest-contract.md`).
