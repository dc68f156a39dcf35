//! Local file work of backups and restores.

use super::*;

pub(super) async fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    tokio::fs::create_dir_all(to).await?;
    run_command(
        "cp",
        &[
            "-a",
            &format!("{}/.", from.display()),
            &to.display().to_string(),
        ],
    )
    .await
}

pub(super) async fn run_command(program: &str, args: &[&str]) -> Result<()> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

pub(super) fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
