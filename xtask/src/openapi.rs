//! `cargo xtask openapi [--check]`: writes the REST API's OpenAPI
//! description, as the server generates it (`confstrata openapi`), to
//! `docs/openapi.json`, or checks that the checked-in copy is current.

use std::process::Command;

use anyhow::{Context, Result, bail};

const OUT: &str = "docs/openapi.json";

pub(crate) fn run(check: bool) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "run",
            "-q",
            "--locked",
            "-p",
            "confstrata-cli",
            "--",
            "openapi",
        ])
        .output()
        .context("cannot run `confstrata openapi`")?;
    if !output.status.success() {
        bail!(
            "`confstrata openapi` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let generated = String::from_utf8(output.stdout).context("the description is not UTF-8")?;
    let target = root.join(OUT);
    if !check {
        std::fs::write(&target, &generated)
            .with_context(|| format!("cannot write {}", target.display()))?;
        println!("openapi: wrote {OUT}");
        return Ok(());
    }
    let current = std::fs::read_to_string(&target).unwrap_or_default();
    if current != generated {
        bail!(
            "{OUT} is out of date (the handlers or their types changed); run `cargo xtask openapi` and commit the result"
        );
    }
    println!("openapi: {OUT} is up to date");
    Ok(())
}
