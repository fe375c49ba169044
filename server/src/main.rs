//! The `hindsight` binary; everything lives in the library, see [`hindsight_server::cli_main`].

fn main() -> std::process::ExitCode {
    hindsight_server::cli_main()
}
