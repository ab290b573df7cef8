//! Writes the large kustomize overlay of [`gitops_benches::generate_overlay`] and prints the
//! folder to build: `gen-overlay DIR [APPS]` (APPS defaults to 40).

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), apps) = (args.next(), args.next()) else {
        eprintln!("usage: gen-overlay DIR [APPS]");
        std::process::exit(2);
    };
    let apps = match apps.map(|a| a.parse::<usize>()) {
        None => 40,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("APPS: {e}");
            std::process::exit(2);
        }
    };
    match gitops_benches::generate_overlay(std::path::Path::new(&dir), apps) {
        Ok(overlay) => println!("{}", overlay.display()),
        Err(e) => {
            eprintln!("writing the overlay under {dir}: {e}");
            std::process::exit(1);
        }
    }
}
