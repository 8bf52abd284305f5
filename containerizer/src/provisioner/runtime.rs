//! An image's runtime config applied to a launch, by Mesos's rules (its
//! docker/runtime isolator): Entrypoint and Cmd merged with the task's
//! CommandInfo, the image's Env under the task's, its User and WorkingDir.

use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;

use super::error::ProvisionError;
use super::reference::Reference;

/// The parts of a Mesos CommandInfo that decide what runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskCommand {
    /// Run `value` with `/bin/sh -c` (CommandInfo.shell, default true).
    pub shell: bool,
    /// The command line (shell) or executable (not shell).
    pub value: Option<String>,
    /// argv, including argv[0], when not a shell command.
    pub arguments: Vec<String>,
}

impl From<&tepui_proto::v1::CommandInfo> for TaskCommand {
    fn from(info: &tepui_proto::v1::CommandInfo) -> Self {
        Self {
            // CommandInfo.shell defaults to true.
            shell: info.shell.unwrap_or(true),
            value: info.value.clone(),
            arguments: info.arguments.clone(),
        }
    }
}

/// The reference and `cached` flag of a task's `Image` (type DOCKER only).
pub fn image_reference(
    image: &tepui_proto::v1::Image,
) -> Result<(Reference, bool), ProvisionError> {
    let (name, cached) = image_name(image)?;
    Ok((name.parse()?, cached))
}

/// The name (as the task gave it) and `cached` flag of a task's `Image`
/// (type DOCKER only).
pub fn image_name(image: &tepui_proto::v1::Image) -> Result<(&str, bool), ProvisionError> {
    use tepui_proto::v1::image::Type;
    let unsupported = |why: &str| ProvisionError::Image {
        reference: image
            .docker
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_default(),
        why: why.to_owned(),
    };
    match Type::try_from(image.r#type) {
        Ok(Type::Docker) => {}
        Ok(Type::Appc) => {
            return Err(unsupported(
                "APPC images are not supported; use a DOCKER (OCI) image",
            ));
        }
        Err(_) => return Err(unsupported("unknown image type")),
    }
    let docker = image
        .docker
        .as_ref()
        .ok_or_else(|| unsupported("a DOCKER image without its docker.name"))?;
    Ok((&docker.name, image.cached.unwrap_or(true)))
}

/// What to execute: the program and its argv (argv[0] included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// The executable, found along PATH when it has no slash.
    pub program: String,
    /// The arguments, argv[0] first.
    pub argv: Vec<String>,
}

/// A command that cannot be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// shell is true but there is no command line.
    #[error("a shell command needs a value")]
    ShellWithoutValue,
    /// Neither the task nor the image names an executable.
    #[error(
        "no executable: the task gives no command value and the image has no Entrypoint or Cmd"
    )]
    NoExecutable,
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

/// Merges `task` with the image's Entrypoint and Cmd (the table in Mesos's
/// `DockerRuntimeIsolatorProcess::getLaunchCommand`).
pub fn command(
    image: Option<&ImageConfiguration>,
    task: &TaskCommand,
) -> Result<Exec, CommandError> {
    if task.shell {
        let value = task.value.clone().ok_or(CommandError::ShellWithoutValue)?;
        return Ok(Exec {
            program: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), value],
        });
    }
    if let Some(value) = &task.value {
        let argv = if task.arguments.is_empty() {
            vec![value.clone()]
        } else {
            task.arguments.clone()
        };
        return Ok(Exec {
            program: value.clone(),
            argv,
        });
    }
    let config = image.and_then(|i| i.config().as_ref());
    let entrypoint = config.map(|c| list(c.entrypoint())).unwrap_or_default();
    let cmd = config.map(|c| list(c.cmd())).unwrap_or_default();
    // The image's executable, then (with an Entrypoint) the rest of it;
    // then the task's arguments, or without any, the image's Cmd (less
    // the Cmd[0] already used as the executable when there is no Entrypoint).
    let (program, mut argv, cmd_rest) = match (entrypoint.split_first(), cmd.split_first()) {
        (Some((first, _)), _) => (first, entrypoint.to_vec(), cmd),
        (None, Some((first, rest))) => (first, vec![first.clone()], rest),
        (None, None) => return Err(CommandError::NoExecutable),
    };
    if task.arguments.is_empty() {
        argv.extend(cmd_rest.iter().cloned());
    } else {
        argv.extend(task.arguments.iter().cloned());
    }
    Ok(Exec {
        program: program.clone(),
        argv,
    })
}

/// The image's Env with the task's on top (a task variable wins).
pub fn environment(
    image: Option<&ImageConfiguration>,
    task: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = image
        .and_then(|i| i.config().as_ref())
        .map(|c| list(c.env()))
        .unwrap_or_default()
        .iter()
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect();
    for (key, value) in task {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env
}

/// The image's User, if it names one.
pub fn user(image: &ImageConfiguration) -> Option<String> {
    image
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .filter(|u| !u.is_empty())
}

/// The image's WorkingDir, if it names one.
pub fn working_dir(image: &ImageConfiguration) -> Option<PathBuf> {
    image
        .config()
        .as_ref()
        .and_then(|c| c.working_dir().clone())
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfiguration {
        let json = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {
                "Entrypoint": if entrypoint.is_empty() { serde_json::Value::Null } else { serde_json::json!(entrypoint) },
                "Cmd": if cmd.is_empty() { serde_json::Value::Null } else { serde_json::json!(cmd) },
                "Env": ["PATH=/bin", "A=image", "B=image"],
                "User": "1000:1000",
                "WorkingDir": "/work"
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        });
        serde_json::from_value(json).unwrap()
    }

    fn task(shell: bool, value: Option<&str>, args: &[&str]) -> TaskCommand {
        TaskCommand {
            shell,
            value: value.map(Into::into),
            arguments: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn argv(
        image: &ImageConfiguration,
        task: &TaskCommand,
    ) -> Result<(String, Vec<String>), CommandError> {
        command(Some(image), task).map(|e| (e.program, e.argv))
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn follows_the_mesos_table_row_by_row() {
        let none = image(&[], &[]);
        let cmd = image(&[], &["echo", "cmd"]);
        let ep = image(&["/ep", "x"], &[]);
        let both = image(&["/ep", "x"], &["c1", "c2"]);
        // sh=0 value=0 argv=0
        assert_eq!(
            argv(&none, &task(false, None, &[])),
            Err(CommandError::NoExecutable)
        );
        assert_eq!(
            argv(&cmd, &task(false, None, &[])),
            Ok(("echo".into(), v(&["echo", "cmd"])))
        );
        assert_eq!(
            argv(&ep, &task(false, None, &[])),
            Ok(("/ep".into(), v(&["/ep", "x"])))
        );
        assert_eq!(
            argv(&both, &task(false, None, &[])),
            Ok(("/ep".into(), v(&["/ep", "x", "c1", "c2"])))
        );
        // sh=0 value=0 argv=1: the task's arguments replace Cmd
        assert_eq!(
            argv(&none, &task(false, None, &["a"])),
            Err(CommandError::NoExecutable)
        );
        assert_eq!(
            argv(&cmd, &task(false, None, &["a"])),
            Ok(("echo".into(), v(&["echo", "a"])))
        );
        assert_eq!(
            argv(&ep, &task(false, None, &["a"])),
            Ok(("/ep".into(), v(&["/ep", "x", "a"])))
        );
        assert_eq!(
            argv(&both, &task(false, None, &["a"])),
            Ok(("/ep".into(), v(&["/ep", "x", "a"])))
        );
        // sh=0 value=1: the image is ignored
        assert_eq!(
            argv(&both, &task(false, Some("/bin/true"), &[])),
            Ok(("/bin/true".into(), v(&["/bin/true"])))
        );
        assert_eq!(
            argv(
                &both,
                &task(false, Some("/bin/busybox"), &["sh", "-c", "x"])
            ),
            Ok(("/bin/busybox".into(), v(&["sh", "-c", "x"])))
        );
        // sh=1: value required, the image ignored
        assert_eq!(
            argv(&both, &task(true, None, &[])),
            Err(CommandError::ShellWithoutValue)
        );
        assert_eq!(
            argv(&none, &task(true, Some("echo hi"), &["ignored"])),
            Ok(("/bin/sh".into(), v(&["sh", "-c", "echo hi"])))
        );
    }

    #[test]
    fn reads_a_mesos_command_and_image() {
        let info = tepui_proto::v1::CommandInfo {
            value: Some("echo hi".into()),
            ..Default::default()
        };
        assert!(TaskCommand::from(&info).shell, "shell defaults to true");
        let image = tepui_proto::v1::Image {
            r#type: tepui_proto::v1::image::Type::Docker as i32,
            docker: Some(tepui_proto::v1::image::Docker {
                name: "127.0.0.1:5000/busybox:latest".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (reference, cached) = image_reference(&image).unwrap();
        assert_eq!(reference.to_string(), "127.0.0.1:5000/busybox:latest");
        assert!(cached);
        let appc = tepui_proto::v1::Image {
            r#type: tepui_proto::v1::image::Type::Appc as i32,
            ..Default::default()
        };
        assert!(
            image_reference(&appc)
                .unwrap_err()
                .to_string()
                .contains("APPC")
        );
    }

    #[test]
    fn the_task_environment_wins_and_image_user_and_dir_apply() {
        let i = image(&[], &["sh"]);
        let env = environment(
            Some(&i),
            &[("B".into(), "task".into()), ("C".into(), "task".into())],
        );
        assert_eq!(
            env,
            vec![
                ("PATH".into(), "/bin".into()),
                ("A".into(), "image".into()),
                ("B".into(), "task".into()),
                ("C".into(), "task".into())
            ]
        );
        assert_eq!(user(&i).as_deref(), Some("1000:1000"));
        assert_eq!(working_dir(&i), Some(PathBuf::from("/work")));
    }
}
