//! The real `hindsight` command, built inside the test package so integration tests can start it
//! as a child process through `CARGO_BIN_EXE_hindsight-under-test`.

fn main() -> std::process::ExitCode {
    hindsight_server::cli_main()
}
