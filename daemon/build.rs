//! berthd and berth-keeper are linked with packed relative relocations (DT_RELR, glibc 2.36+,
//! binutils 2.38+; older linkers warn and ignore the flag). A position-independent binary
//! otherwise carries ~500 KiB of `R_X86_64_RELATIVE` entries that the loader reads in full
//! at every start, and they stay resident for the daemon's life; packed, they are a few KiB.
//! ASLR is kept, which linking without PIE would give up.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
