//! A task that runs in an image: its CommandInfo rewritten by the image's
//! runtime config (Entrypoint and Cmd merged by Mesos's table, the image's
//! Env under the task's, its User when the task names none), so the
//! executor that starts it needs no knowledge of images.

use oci_spec::image::ImageConfiguration;
use tepui_containerizer::provisioner::runtime::{self, CommandError, TaskCommand};
use tepui_proto::v1::{TaskInfo, environment};

/// Rewrites `task`'s command for `image`.
pub fn apply(image: &ImageConfiguration, task: &mut TaskInfo) -> Result<(), CommandError> {
    let command = task.command.get_or_insert_default();
    let exec = runtime::command(Some(image), &TaskCommand::from(&*command))?;
    command.shell = Some(false);
    command.value = Some(exec.program);
    command.arguments = exec.argv;
    let own: Vec<(String, String)> = command
        .environment
        .iter()
        .flat_map(|e| &e.variables)
        .filter_map(|v| Some((v.name.clone(), v.value.clone()?)))
        .collect();
    let merged = runtime::environment(Some(image), &own);
    command.environment = Some(tepui_proto::v1::Environment {
        variables: merged
            .into_iter()
            .map(|(name, value)| environment::Variable {
                name,
                value: Some(value),
                r#type: Some(environment::variable::Type::Value as i32),
                ..Default::default()
            })
            .collect(),
    });
    if command.user.is_none() {
        command.user = runtime::user(image);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};
    use tepui_proto::v1::{CommandInfo, Environment};

    fn image() -> ImageConfiguration {
        ImageConfigurationBuilder::default()
            .config(
                ConfigBuilder::default()
                    .entrypoint(vec!["/bin/app".to_owned()])
                    .cmd(vec!["--serve".to_owned()])
                    .env(vec!["PATH=/bin".to_owned(), "MODE=image".to_owned()])
                    .user("nobody".to_owned())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn value(task: &TaskInfo, name: &str) -> Option<String> {
        task.command
            .as_ref()?
            .environment
            .as_ref()?
            .variables
            .iter()
            .find(|v| v.name == name)?
            .value
            .clone()
    }

    #[test]
    fn a_task_without_a_command_runs_the_entrypoint_and_cmd() {
        let mut task = TaskInfo {
            command: Some(CommandInfo {
                shell: Some(false),
                environment: Some(Environment {
                    variables: vec![environment::Variable {
                        name: "MODE".into(),
                        value: Some("task".into()),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        apply(&image(), &mut task).unwrap();
        let command = task.command.as_ref().unwrap();
        assert_eq!(command.value.as_deref(), Some("/bin/app"));
        assert_eq!(command.arguments, ["/bin/app", "--serve"]);
        assert_eq!(command.user.as_deref(), Some("nobody"));
        assert_eq!(
            value(&task, "MODE").as_deref(),
            Some("task"),
            "the task's variable wins"
        );
        assert_eq!(value(&task, "PATH").as_deref(), Some("/bin"));
    }

    #[test]
    fn a_shell_command_stays_a_shell_command_with_the_tasks_user() {
        let mut task = TaskInfo {
            command: Some(CommandInfo {
                value: Some("echo hi".into()),
                user: Some("root".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        apply(&image(), &mut task).unwrap();
        let command = task.command.as_ref().unwrap();
        assert_eq!(command.value.as_deref(), Some("/bin/sh"));
        assert_eq!(command.arguments, ["sh", "-c", "echo hi"]);
        assert_eq!(command.user.as_deref(), Some("root"));
    }
}
