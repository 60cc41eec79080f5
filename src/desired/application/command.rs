//! The container's command: what the container was started to run, read
//! from a process's command line (`/proc/<pid>/cmdline`), and what it means
//! for the profiles phase.
//!
//! The image starts its program through a wrapper script (`main-wrapper.sh`),
//! so the container's command is the argv of the first process holding an
//! argument that contains the wrapper's name: PID 1 when the supervisor
//! starts the wrapper itself, another process under s6-overlay v3 (where
//! PID 1 is s6-svscan). Everything up to and including the wrapper is
//! stripped, then a leading dispatcher script and a leading program name.

use crate::desired::config::ContainerConfig;

/// A command line as the kernel stores it: arguments separated (and
/// terminated) by NUL bytes. Empty arguments are dropped and invalid UTF-8
/// is replaced, as the application reads it.
pub fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// Whether this argv is the container's command: an argument is the
/// wrapper, by its exact name (its file name, or the whole argument when
/// the configured wrapper is a path); never a mere substring.
pub fn holds_wrapper(argv: &[String], wrapper: &str) -> bool {
    argv.iter().any(|a| is_wrapper(a, wrapper))
}

fn is_wrapper(arg: &str, wrapper: &str) -> bool {
    arg == wrapper || file_name(arg) == wrapper
}

fn file_name(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// The arguments the program was given: everything up to and including the
/// first argument ending in the wrapper's name is dropped (without one, a
/// leading `init`, s6-overlay's entry point); then a leading argument
/// ending in the dispatcher's name; then a leading argument whose file name
/// is the program's.
pub fn program_args<'a>(argv: &'a [String], c: &ContainerConfig) -> &'a [String] {
    let mut args = argv;
    match args.iter().position(|a| is_wrapper(a, &c.wrapper)) {
        Some(i) => args = &args[i + 1..],
        None => {
            if args.first().is_some_and(|a| file_name(a) == "init") {
                args = &args[1..];
            }
        }
    }
    if args
        .first()
        .is_some_and(|a| a.ends_with(c.dispatcher.as_str()))
    {
        args = &args[1..];
    }
    if args.first().is_some_and(|a| file_name(a) == c.program) {
        args = &args[1..];
    }
    args
}

/// What the container runs, as far as the profiles phase cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A dashboard: no profile gateway is published.
    Dashboard,
    /// The pre-supervision way to run the default gateway (`gateway run`),
    /// not opted out with the flag.
    LegacyGatewayRun,
    /// Anything else, or no command found.
    Other,
}

/// Classify the container's command (`None`: no process holds the wrapper).
pub fn classify(argv: Option<&[String]>, c: &ContainerConfig) -> Kind {
    let Some(argv) = argv else {
        return Kind::Other;
    };
    let args = program_args(argv, c);
    if args
        .first()
        .is_some_and(|a| c.dashboard_commands.contains(a))
    {
        return Kind::Dashboard;
    }
    let legacy = !c.legacy_command.is_empty()
        && args.len() >= c.legacy_command.len()
        && args[..c.legacy_command.len()] == c.legacy_command[..]
        && !args.contains(&c.no_supervise_flag);
    if legacy {
        Kind::LegacyGatewayRun
    } else {
        Kind::Other
    }
}

/// The line printed instead of the profile lines in a dashboard container.
pub const DASHBOARD_LINE: &str =
    "reconcile: skipping (dashboard container — does not need per-profile gateways)";

/// Where a migrated state file says it came from.
pub const MIGRATED_FROM: &str = "legacy-container-cmd";

/// The state file written for a legacy `gateway run` container, in the
/// application's own JSON layout (`unix` = seconds since the epoch, taken
/// when it is written).
pub fn migrated_state(unix: u64) -> String {
    format!(
        "{{\"gateway_state\": \"running\", \"desired_state\": \"running\", \
         \"timestamp\": {unix}, \"migrated_from\": \"{MIGRATED_FROM}\"}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        split_cmdline(s.replace(' ', "\0").as_bytes())
    }

    fn kind(s: &str) -> Kind {
        classify(Some(&argv(s)), &ContainerConfig::default())
    }

    #[test]
    fn cmdline_splitting() {
        assert_eq!(
            split_cmdline(b"/init\0/opt/main-wrapper.sh\0\0gateway\0run\0"),
            vec!["/init", "/opt/main-wrapper.sh", "gateway", "run"]
        );
        assert_eq!(split_cmdline(b""), Vec::<String>::new());
        assert_eq!(split_cmdline(b"a\xffb\0"), vec!["a\u{fffd}b"]);
    }

    #[test]
    fn wrapper_is_found_by_its_exact_name_only() {
        assert!(holds_wrapper(
            &argv("/init /opt/hermes/docker/main-wrapper.sh gateway run"),
            "main-wrapper.sh"
        ));
        assert!(!holds_wrapper(
            &argv("sh -c main-wrapper.sh.bak"),
            "main-wrapper.sh"
        ));
        assert!(!holds_wrapper(
            &["sh".into(), "-c".into(), "main-wrapper.sh dashboard".into()],
            "main-wrapper.sh"
        ));
        assert!(!holds_wrapper(
            &argv("/x/not-main-wrapper.sh dashboard"),
            "main-wrapper.sh"
        ));
        assert!(!holds_wrapper(
            &argv("s6-svscan -t0 /run/service"),
            "main-wrapper.sh"
        ));
    }

    #[test]
    fn prefix_is_stripped() {
        let c = ContainerConfig::default();
        let v = argv(
            "/package/admin/s6-overlay/libexec/rc.init top /opt/hermes/docker/main-wrapper.sh /opt/hermes/docker/entrypoint-dispatch.sh /usr/local/bin/hermes gateway run --verbose",
        );
        assert_eq!(program_args(&v, &c), ["gateway", "run", "--verbose"]);
        let v = argv("/init main-wrapper.sh hermes dashboard");
        assert_eq!(program_args(&v, &c), ["dashboard"]);
        // No argument ends in the wrapper's name: only a leading init goes.
        let v = argv("/init sh -c x-main-wrapper.sh.old");
        assert_eq!(program_args(&v, &c), ["sh", "-c", "x-main-wrapper.sh.old"]);
        // The program's name is matched as a file name, the dispatcher as a suffix.
        let v = argv("main-wrapper.sh /bin/hermes-x gateway run");
        assert_eq!(program_args(&v, &c), ["/bin/hermes-x", "gateway", "run"]);
    }

    #[test]
    fn classification() {
        assert_eq!(
            kind("/init /opt/main-wrapper.sh gateway run"),
            Kind::LegacyGatewayRun
        );
        assert_eq!(
            kind("/init /opt/main-wrapper.sh hermes gateway run --replace"),
            Kind::LegacyGatewayRun
        );
        assert_eq!(
            kind("/init /opt/main-wrapper.sh gateway run --no-supervise"),
            Kind::Other
        );
        assert_eq!(kind("/init /opt/main-wrapper.sh gateway"), Kind::Other);
        assert_eq!(
            kind("/init /opt/main-wrapper.sh gateway start"),
            Kind::Other
        );
        assert_eq!(
            kind("/init /opt/main-wrapper.sh dashboard --port 9119"),
            Kind::Dashboard
        );
        assert_eq!(kind("/init /opt/main-wrapper.sh"), Kind::Other);
        assert_eq!(
            kind("/init /opt/main-wrapper.sh sleep infinity"),
            Kind::Other
        );
        assert_eq!(classify(None, &ContainerConfig::default()), Kind::Other);
    }

    #[test]
    fn configured_names() {
        let c = ContainerConfig {
            wrapper: "start.sh".into(),
            program: "app".into(),
            legacy_command: vec!["serve".into()],
            no_supervise_flag: "--foreground".into(),
            dashboard_commands: vec!["ui".into(), "web".into()],
            ..ContainerConfig::default()
        };
        let k = |s: &str| classify(Some(&argv(s)), &c);
        assert_eq!(k("/start.sh app serve"), Kind::LegacyGatewayRun);
        assert_eq!(k("/start.sh app serve --foreground"), Kind::Other);
        assert_eq!(k("/start.sh web"), Kind::Dashboard);
        assert_eq!(k("/start.sh dashboard"), Kind::Other);
    }

    #[test]
    fn migrated_state_is_the_applications_layout() {
        assert_eq!(
            migrated_state(1_764_500_000),
            "{\"gateway_state\": \"running\", \"desired_state\": \"running\", \
             \"timestamp\": 1764500000, \"migrated_from\": \"legacy-container-cmd\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&migrated_state(5)).unwrap();
        assert_eq!(v["desired_state"], "running");
    }
}
