//! `nubo up`: the whole cloud on this machine. Opens (or creates) the data directory, bootstraps,
//! writes `DIR/clouds.yaml` on first start, prints how to use it, and serves.

use std::path::Path;

use anyhow::Context;
use nubo_common::Config;

use crate::server::Cloud;

pub async fn run(config: Config) -> anyhow::Result<()> {
    // The data plane needs root and its tools (issue 6): say so before anything is made.
    if config.agent.in_process {
        nubo_agent::netplane::preflight(&config).map_err(anyhow::Error::msg)?;
    }
    let cloud = Cloud::open(config).await?;
    let data_dir = cloud.config.server.data_dir.clone();
    let clouds_yaml = data_dir.join("clouds.yaml");
    let auth_url = format!("{}/identity", cloud.config.public_url());
    if let Some(password) = &cloud.bootstrap.admin_password {
        write_clouds_yaml(
            &clouds_yaml,
            &auth_url,
            password,
            &cloud.config.server.region,
        )?;
        println!("Nubo bootstrapped in {}", data_dir.display());
        println!("  admin user:     admin");
        println!("  admin password: {password}");
        println!("  admin project:  admin (domain Default)");
        println!("  auth URL:       {auth_url}");
    } else if !clouds_yaml.exists() {
        println!(
            "note: {} is missing; the admin password was printed on first start",
            clouds_yaml.display()
        );
    }
    let absolute = std::fs::canonicalize(&clouds_yaml).unwrap_or(clouds_yaml);
    println!("Use it with the openstack CLI:");
    println!(
        "  export OS_CLIENT_CONFIG_FILE={} OS_CLOUD=nubo",
        absolute.display()
    );
    if cloud.config.agent.in_process {
        cloud.spawn_local_agent().await?;
    }
    println!("Serving on {} (Ctrl-C stops)", cloud.config.public_url());
    cloud.serve().await
}

/// Writes the `nubo` cloud entry (readable by the owner only: it holds the admin password).
fn write_clouds_yaml(
    path: &Path,
    auth_url: &str,
    password: &str,
    region: &str,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = format!(
        "# Written by `nubo up` on first start.\n\
         clouds:\n  nubo:\n    auth:\n      auth_url: {auth_url}\n      username: admin\n      password: \"{password}\"\n      \
         project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n    \
         region_name: {region}\n    interface: public\n    identity_api_version: 3\n"
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
