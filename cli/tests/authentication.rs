//! The `tepui` command line against a master (tepui's, in this process)
//! that requires authentication on its read-only and read-write
//! endpoints: without a credential each command fails with the 401, with
//! `--principal/--secret` or `TEPUI_PRINCIPAL`/`TEPUI_SECRET` it is
//! served.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use tepui_master::authentication::{Authentication, Required};
use tepui_master::master::Config;
use tepui_master::server::Server;
use tepui_proto::authentication::{BasicAuthenticator, Credential};

fn tepui(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tepui"));
    command
        .args(args)
        .env_remove("TEPUI_PRINCIPAL")
        .env_remove("TEPUI_SECRET");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn the_cli_sends_its_credential_to_a_master_that_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let authentication = Authentication::new(
            BasicAuthenticator::new([Credential {
                principal: "ops".into(),
                secret: "ops-secret".into(),
            }]),
            Required {
                readonly: true,
                readwrite: true,
                ..Required::default()
            },
        );
        let server = Server::with_authentication(
            Config::defaults(dir.path().to_owned(), &address),
            authentication,
        )
        .unwrap();
        tokio::spawn(server.serve(listener));
        address
    });

    for args in [
        vec!["frameworks", "--master", &address],
        vec!["kill", "--master", &address, "no-such-task"],
    ] {
        let bare = tepui(&args, &[]);
        let err = String::from_utf8_lossy(&bare.stderr);
        assert!(
            !bare.status.success() && err.contains("401"),
            "{args:?}: {err}"
        );
        let wrong = tepui(
            &[&args[..], &["--principal", "ops", "--secret", "nope"]].concat(),
            &[],
        );
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("401"));
    }
    let listed = tepui(
        &[
            "frameworks",
            "--master",
            &address,
            "--principal",
            "ops",
            "--secret",
            "ops-secret",
        ],
        &[],
    );
    assert!(listed.status.success(), "{listed:?}");
    let killed = tepui(
        &["kill", "--master", &address, "no-such-task"],
        &[("TEPUI_PRINCIPAL", "ops"), ("TEPUI_SECRET", "ops-secret")],
    );
    let err = String::from_utf8_lossy(&killed.stderr);
    assert!(
        err.contains("404") && err.contains("no running task"),
        "{err}"
    );
    // A principal without its secret is refused before anything is sent.
    let half = tepui(
        &["frameworks", "--master", &address, "--principal", "ops"],
        &[],
    );
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--secret"));
}
