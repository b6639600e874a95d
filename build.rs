fn main() {
    // `cargo test` binaries must link the libpython that `python3` runs,
    // not whichever one the system linker finds first.
    pyo3_build_config::add_libpython_rpath_link_args();
}
