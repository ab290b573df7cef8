//! Prints what `kubectl kustomize DIR` prints, using the in-process renderer:
//! `cargo run -p gitops-render --example kustomize_build -- DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use gitops_render::KustomizeRenderer;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: kustomize_build DIR");
        return ExitCode::from(2);
    };
    match KustomizeRenderer::new().build_yaml(&dir) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
