//! The master's authentication flags as an operator gives them, through
//! the real `tepui-master`: both spellings and `MESOS_`/`TEPUI_`
//! variables are read, and what tepui cannot honour is refused at start
//! with a message naming it (never ignored).

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Runs the master with `args` and `env` until it exits (every case here
/// is refused before it listens); its stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tepui-master"));
    command
        .args(["--ip", "127.0.0.1", "--port", "0"])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    assert!(!out.status.success(), "{args:?} {env:?} was not refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn authentication_flags_are_read_in_every_spelling_and_refused_when_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text");
    std::fs::write(&text, "alice secret\n").unwrap();
    let text = text.display().to_string();
    let json = dir.path().join("json");
    std::fs::write(&json, r#"{"credentials":[{"principal":"a","secret":"b"}]}"#).unwrap();
    let json = format!("file://{}", json.display());

    for (args, env) in [
        (vec!["--authenticate_agents"], vec![]),
        (vec!["--authenticate-http-readonly=true"], vec![]),
        (vec!["--authenticate_http"], vec![]),
        (vec![], vec![("MESOS_AUTHENTICATE_HTTP_READWRITE", "true")]),
        (
            vec![],
            vec![
                ("TEPUI_AUTHENTICATE_SLAVES", "true"),
                ("TEPUI_AUTHENTICATE_AGENTS", "true"),
            ],
        ),
    ] {
        let err = refused(&args, &env);
        assert!(
            err.contains("names no credentials"),
            "{args:?} {env:?}: {err}"
        );
    }
    let err = refused(&["--credentials", &text, "--authenticate_agents"], &[]);
    assert!(err.contains("only JSON"), "{err}");
    let err = refused(&["--authenticate_agents"], &[("MESOS_CREDENTIALS", &text)]);
    assert!(err.contains("only JSON"), "{err}");
    let err = refused(
        &["--credentials", &json, "--http_authenticators", "kerberos"],
        &[],
    );
    assert!(err.contains("\"kerberos\" is not supported"), "{err}");
    let err = refused(
        &["--credentials", &json, "--authenticate_http_frameworks"],
        &[],
    );
    assert!(err.contains("--http_framework_authenticators"), "{err}");
    let err = refused(
        &[
            "--credentials",
            &json,
            "--authenticate_http_frameworks",
            "--http_framework_authenticators=jwt",
        ],
        &[],
    );
    assert!(err.contains("\"jwt\" is not supported"), "{err}");
}

#[test]
fn acls_are_read_from_the_flag_a_file_or_the_environment_and_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acls.json");
    std::fs::write(&file, r#"{"reserve_resources":[]}"#).unwrap();
    let url = format!("file://{}", file.display());
    let path = file.display().to_string();
    for (args, env) in [
        (vec!["--acls", r#"{"reserve_resources":[]}"#], vec![]),
        (vec!["--acls", path.as_str()], vec![]),
        (vec!["--acls", url.as_str()], vec![]),
        (vec![], vec![("MESOS_ACLS", path.as_str())]),
        (vec![], vec![("TEPUI_ACLS", url.as_str())]),
    ] {
        let err = refused(&args, &env);
        assert!(
            err.contains("'reserve_resources' is a Mesos ACL that tepui does not enforce"),
            "{args:?} {env:?}: {err}"
        );
    }
    let err = refused(
        &["--acls", r#"{"run_tasks":[{"principals":{"type":"ANY"}}]}"#],
        &[],
    );
    assert!(err.contains("run_tasks[0]: 'users' is required"), "{err}");
}
