//! The `hearth` binary: installed at `/opt/extensions/hearth` by the layer.

use std::process::ExitCode;

use hearth_extension::config::Env;
use hearth_extension::lifecycle;

fn main() -> ExitCode {
    // Two workers: Lambda gives a function one or two vCPUs, and a small runtime starts
    // faster and uses less memory than one sized for the host.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(lifecycle::run(Env::from_process())),
        Err(e) => {
            eprintln!("hearth: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
