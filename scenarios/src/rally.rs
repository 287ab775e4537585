//! Rally task files as a workload: a campaign's `workload: {rally: {task: FILE}}` reads a Rally
//! task (format version 1 or 2, JSON or YAML) and turns each of its common scenarios into the
//! command streams that do the same work. The streams come out as raw commands located in the
//! Rally file, so the workload's own checks (parameters, rates) report their problems there too.
//!
//! What Rally does that a campaign does differently is said, not silently dropped: `times` and
//! `duration` are not used (the campaign's windows decide how long the workload runs), the `users`,
//! `quotas` and `network` contexts are taken by the campaign's cloud user and the workload's own
//! networks, and an SLA is not evaluated (the campaign's hypotheses judge). Everything else that
//! is not supported — another scenario, runner, context or argument, a Jinja template — is a
//! located error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, quoted, suggestion};
use crate::raw::{Pos, RawCommand, Scalar, Sp};

/// The Rally scenarios a workload can stand for.
pub const SUPPORTED_SCENARIOS: &[&str] = &[
    "NovaServers.boot_and_delete_server",
    "CinderVolumes.create_and_delete_volume",
    "CinderVolumes.create_and_attach_volume",
    "NeutronNetworks.create_and_delete_networks",
    "NeutronNetworks.create_and_delete_ports",
    "GlanceImages.create_and_delete_image",
];

/// The runners whose concurrency maps onto a command stream.
const RUNNERS: &[&str] = &["constant", "constant_for_duration", "rps", "serial"];

/// Contexts whose work the campaign does its own way (see the module story).
const CONTEXTS: &[&str] = &["users", "quotas", "network"];

/// A version 2 task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskV2 {
    #[allow(
        dead_code,
        reason = "read to accept the field; the version is probed first"
    )]
    version: Sp<Scalar>,
    #[allow(dead_code, reason = "free text")]
    title: Option<IgnoredAny>,
    #[allow(dead_code, reason = "free text")]
    description: Option<IgnoredAny>,
    #[allow(dead_code, reason = "free text")]
    tags: Option<IgnoredAny>,
    subtasks: Vec<Sp<SubtaskV2>>,
}

/// One subtask: one workload inline, or a list of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubtaskV2 {
    #[allow(dead_code, reason = "free text")]
    title: Option<IgnoredAny>,
    #[allow(dead_code, reason = "free text")]
    description: Option<IgnoredAny>,
    #[allow(dead_code, reason = "free text")]
    tags: Option<IgnoredAny>,
    #[allow(dead_code, reason = "Rally's grouping of subtasks in its reports")]
    group: Option<IgnoredAny>,
    scenario: Option<Sp<ScenarioV2>>,
    runner: Option<Sp<RunnerV2>>,
    contexts: Option<Sp<Contexts>>,
    #[allow(dead_code, reason = "accepted, not evaluated (see the module story)")]
    sla: Option<IgnoredAny>,
    hooks: Option<Sp<IgnoredAny>>,
    workloads: Option<Vec<Sp<WorkloadV2>>>,
}

/// One workload of a subtask's `workloads`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadV2 {
    scenario: Option<Sp<ScenarioV2>>,
    runner: Option<Sp<RunnerV2>>,
    contexts: Option<Sp<Contexts>>,
    #[allow(dead_code, reason = "accepted, not evaluated (see the module story)")]
    sla: Option<IgnoredAny>,
    hooks: Option<Sp<IgnoredAny>>,
}

/// `{Scenario.name: {argument: value}}`.
type ScenarioV2 = BTreeMap<String, Sp<BTreeMap<String, Sp<Value>>>>;
/// `{runner_type: {option: value}}`.
type RunnerV2 = BTreeMap<String, Sp<BTreeMap<String, Sp<Value>>>>;
/// Context names and their (unread) settings.
type Contexts = BTreeMap<String, Sp<IgnoredAny>>;

/// The parts of a version 2 workload, inline in a subtask or in its `workloads`.
struct PartsV2<'a> {
    scenario: Option<&'a Sp<ScenarioV2>>,
    runner: Option<&'a Sp<RunnerV2>>,
    contexts: Option<&'a Sp<Contexts>>,
    hooks: Option<&'a Sp<IgnoredAny>>,
}

/// One workload of a version 1 task (`{Scenario.name: [workload, …]}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadV1 {
    args: Option<Sp<BTreeMap<String, Sp<Value>>>>,
    runner: Option<Sp<BTreeMap<String, Sp<Value>>>>,
    context: Option<Sp<Contexts>>,
    #[allow(dead_code, reason = "accepted, not evaluated (see the module story)")]
    sla: Option<IgnoredAny>,
    hooks: Option<Sp<IgnoredAny>>,
}

/// The version a task declares, read before its shape.
#[derive(Debug, Deserialize)]
struct Probe {
    version: Option<Sp<Scalar>>,
}

/// One scenario run, whichever the format.
struct Run<'a> {
    name: &'a Sp<String>,
    args: BTreeMap<String, &'a Sp<Value>>,
    runner_type: Option<(String, Pos)>,
    runner: BTreeMap<String, &'a Sp<Value>>,
    contexts: Vec<(String, Pos)>,
    hooks: Option<Pos>,
    at: Pos,
}

/// Reads a Rally task's text into command streams, or every problem found, located in `file`.
/// `rate` is the start rate of the streams of runners that have none (`constant`, `serial`).
pub fn commands(file: &Path, text: &str, rate: &str) -> Result<Vec<Sp<RawCommand>>, Diagnostics> {
    if let Some((line, column)) = template_at(text) {
        let mut diagnostics = Diagnostics(vec![
            Diagnostic::new(
                file,
                Pos { line, column },
                "the task is a Jinja template; Butterfly reads rendered tasks only",
            )
            .with_hint(
                "render it first (as `rally task start --task-args` would) and name the result",
            ),
        ]);
        diagnostics.attach_source(file, text);
        return Err(diagnostics);
    }
    let probe: Probe = crate::parse_yaml(file, text)?;
    let mut diagnostics = Vec::new();
    let mut out = Vec::new();
    let mut error = |at: Pos, message: String, hint: Option<String>| {
        let diagnostic = Diagnostic::new(file, at, message);
        diagnostics.push(match hint {
            Some(hint) => diagnostic.with_hint(hint),
            None => diagnostic,
        });
    };
    match probe.version.as_ref().map(|v| v.value.0.trim()) {
        Some("2") => {
            let task: TaskV2 = crate::parse_yaml(file, text)?;
            for subtask in &task.subtasks {
                let inline = &subtask.value;
                let mut workloads = vec![PartsV2 {
                    scenario: inline.scenario.as_ref(),
                    runner: inline.runner.as_ref(),
                    contexts: inline.contexts.as_ref(),
                    hooks: inline.hooks.as_ref(),
                }];
                if let Some(list) = &inline.workloads {
                    if inline.scenario.is_some() {
                        error(
                            subtask.at,
                            "a subtask gives either `scenario` or `workloads`, not both".into(),
                            None,
                        );
                    }
                    workloads = list
                        .iter()
                        .map(|w| PartsV2 {
                            scenario: w.value.scenario.as_ref(),
                            runner: w.value.runner.as_ref(),
                            contexts: w.value.contexts.as_ref(),
                            hooks: w.value.hooks.as_ref(),
                        })
                        .collect();
                }
                for workload in workloads {
                    let Some(scenario) = workload.scenario else {
                        error(subtask.at, "the subtask has no `scenario`".into(), None);
                        continue;
                    };
                    if scenario.value.len() != 1 {
                        error(
                            scenario.at,
                            "a `scenario` names exactly one scenario".into(),
                            None,
                        );
                        continue;
                    }
                    let (name, args) = scenario.value.iter().next().expect("one entry");
                    let name = Sp {
                        value: name.clone(),
                        at: args.at,
                    };
                    let (runner_type, runner) = match workload.runner {
                        Some(runner) if runner.value.len() == 1 => {
                            let (kind, body) = runner.value.iter().next().expect("one entry");
                            (
                                Some((kind.clone(), body.at)),
                                body.value.iter().map(|(k, v)| (k.clone(), v)).collect(),
                            )
                        }
                        Some(runner) => {
                            error(
                                runner.at,
                                "a `runner` names exactly one runner".into(),
                                None,
                            );
                            continue;
                        }
                        None => (None, BTreeMap::new()),
                    };
                    let run = Run {
                        name: &name,
                        args: args.value.iter().map(|(k, v)| (k.clone(), v)).collect(),
                        runner_type,
                        runner,
                        contexts: context_names(workload.contexts),
                        hooks: workload.hooks.map(|h| h.at),
                        at: args.at,
                    };
                    convert(&run, rate, &mut out, &mut error);
                }
            }
        }
        None => {
            let task: BTreeMap<String, Sp<Vec<Sp<WorkloadV1>>>> = crate::parse_yaml(file, text)?;
            for (name, workloads) in &task {
                let name = Sp {
                    value: name.clone(),
                    at: workloads.at,
                };
                for workload in &workloads.value {
                    let w = &workload.value;
                    let mut runner: BTreeMap<String, &Sp<Value>> = w
                        .runner
                        .as_ref()
                        .map(|r| r.value.iter().map(|(k, v)| (k.clone(), v)).collect())
                        .unwrap_or_default();
                    let runner_type = match runner.remove("type") {
                        Some(kind) => match kind.value.as_str() {
                            Some(text) => Some((text.to_owned(), kind.at)),
                            None => {
                                error(kind.at, "the runner `type` is not a name".into(), None);
                                continue;
                            }
                        },
                        None => None,
                    };
                    let run = Run {
                        name: &name,
                        args: w
                            .args
                            .as_ref()
                            .map(|a| a.value.iter().map(|(k, v)| (k.clone(), v)).collect())
                            .unwrap_or_default(),
                        runner_type,
                        runner,
                        contexts: context_names(w.context.as_ref()),
                        hooks: w.hooks.as_ref().map(|h| h.at),
                        at: workload.at,
                    };
                    convert(&run, rate, &mut out, &mut error);
                }
            }
        }
        Some(other) => {
            let at = probe.version.as_ref().map_or(Pos::default(), |v| v.at);
            error(
                at,
                format!("unknown Rally task version {}", quoted(other)),
                Some("Rally task formats are version 1 (no `version`) and 2".into()),
            );
        }
    }
    if out.is_empty() && diagnostics.is_empty() {
        diagnostics.push(Diagnostic::new(
            file,
            Pos::default(),
            "the task runs no scenario",
        ));
    }
    if diagnostics.is_empty() {
        return Ok(out);
    }
    let mut diagnostics = Diagnostics(diagnostics);
    diagnostics.attach_source(file, text);
    diagnostics.sort();
    Err(diagnostics)
}

/// The first Jinja tag (`{%`, `{{`, `{#`) outside a quoted JSON/YAML string would make the file
/// unparsable; inside a string (`"{{flavor_name}}"`) it would become a flavor name. Either way
/// the task was meant to be rendered first.
fn template_at(text: &str) -> Option<(u32, u32)> {
    text.lines().enumerate().find_map(|(index, line)| {
        ["{%", "{{", "{#"]
            .iter()
            .filter_map(|tag| line.find(tag))
            .min()
            .map(|byte| {
                let column = line[..byte].chars().count() as u32 + 1;
                (index as u32 + 1, column)
            })
    })
}

fn context_names(contexts: Option<&Sp<Contexts>>) -> Vec<(String, Pos)> {
    contexts
        .map(|c| c.value.iter().map(|(k, v)| (k.clone(), v.at)).collect())
        .unwrap_or_default()
}

type Report<'e> = dyn FnMut(Pos, String, Option<String>) + 'e;

/// One stream a scenario becomes: the command, its parameters, and its rate's multiple of the
/// scenario's.
type Stream = (&'static str, Vec<(&'static str, Sp<Scalar>)>, u32);

/// A scalar argument as the text a workload parameter takes.
fn scalar(value: &Sp<Value>) -> Option<Sp<Scalar>> {
    let text = match &value.value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    Some(Sp {
        value: Scalar(text),
        at: value.at,
    })
}

/// `{name: X}`, the way Rally names flavors and images.
fn named(value: &Sp<Value>, what: &str, error: &mut Report<'_>) -> Option<Sp<Scalar>> {
    match value.value.as_object() {
        Some(object) if object.len() == 1 && object.get("name").is_some_and(Value::is_string) => {
            Some(Sp {
                value: Scalar(object["name"].as_str().unwrap_or_default().to_owned()),
                at: value.at,
            })
        }
        _ => {
            error(
                value.at,
                format!("the {what} must be given as `{{name: …}}`"),
                Some(format!(
                    "Butterfly looks the {what} up by its exact name (no regular expression, id or other key)"
                )),
            );
            None
        }
    }
}

/// Turns one scenario run into streams.
fn convert(
    run: &Run<'_>,
    default_rate: &str,
    out: &mut Vec<Sp<RawCommand>>,
    error: &mut Report<'_>,
) {
    let scenario = run.name.value.as_str();
    if !SUPPORTED_SCENARIOS.contains(&scenario) {
        error(
            run.name.at,
            format!("Rally scenario {} is not supported", quoted(scenario)),
            Some(suggestion(scenario, SUPPORTED_SCENARIOS)),
        );
        return;
    }
    if let Some(at) = run.hooks {
        error(
            at,
            "Rally hooks are not supported".into(),
            Some("remove `hooks`; give faults as the campaign's experiments".into()),
        );
    }
    for (context, at) in &run.contexts {
        if !CONTEXTS.contains(&context.as_str()) {
            error(
                *at,
                format!("Rally context {} is not supported", quoted(context)),
                Some(format!(
                    "supported (done by the campaign's cloud and workload): {}",
                    CONTEXTS.join(", ")
                )),
            );
        }
    }
    // Runner: its concurrency, and a rate for `rps`.
    let mut rate = Sp {
        value: Scalar(default_rate.to_owned()),
        at: run.at,
    };
    let mut concurrency = Sp {
        value: Scalar("1".into()),
        at: run.at,
    };
    let runner_at = run.runner_type.as_ref().map_or(run.at, |(_, at)| *at);
    let runner = run
        .runner_type
        .as_ref()
        .map_or("serial", |(kind, _)| kind.as_str());
    if !RUNNERS.contains(&runner) {
        error(
            runner_at,
            format!("Rally runner {} is not supported", quoted(runner)),
            Some(suggestion(runner, RUNNERS)),
        );
        return;
    }
    for (key, value) in &run.runner {
        let known: &[&str] = match runner {
            "constant" => &["times", "concurrency", "timeout", "max_cpu_count"],
            "constant_for_duration" => &["duration", "concurrency", "timeout"],
            "rps" => &[
                "times",
                "rps",
                "timeout",
                "max_concurrency",
                "max_cpu_count",
            ],
            _ => &["times"],
        };
        if !known.contains(&key.as_str()) {
            error(
                value.at,
                format!("unknown option {} of the {runner} runner", quoted(key)),
                Some(suggestion(key, known)),
            );
            continue;
        }
        let Some(text) = scalar(value) else {
            error(
                value.at,
                format!("the runner's {} must be a number", quoted(key)),
                None,
            );
            continue;
        };
        match key.as_str() {
            "concurrency" | "max_concurrency" => concurrency = text,
            "rps" => {
                rate = Sp {
                    value: Scalar(format!("{}/s", text.value.0)),
                    at: text.at,
                }
            }
            // How long or how often: the campaign's windows decide (see the module story).
            _ => {}
        }
    }
    let mut streams: Vec<Stream> = Vec::new();
    let allowed = |keys: &[&str], error: &mut Report<'_>| {
        for (key, value) in &run.args {
            if !keys.contains(&key.as_str()) {
                error(
                    value.at,
                    format!("argument {} of {scenario} is not supported", quoted(key)),
                    Some(format!("supported: {}", keys.join(", "))),
                );
            }
        }
    };
    let arg = |key: &str| run.args.get(key).copied();
    let empty_object = |key: &str, error: &mut Report<'_>| {
        if let Some(value) = arg(key)
            && value.value.as_object().is_none_or(|o| !o.is_empty())
        {
            error(
                value.at,
                format!("{} with attributes is not supported", quoted(key)),
                Some("give `{}`: the workload creates them with default attributes".into()),
            );
        }
    };
    let size = |error: &mut Report<'_>| -> Option<Sp<Scalar>> {
        let value = arg("size")?;
        let size = scalar(value);
        if size.is_none() {
            error(
                value.at,
                "a size range is not supported".into(),
                Some("give one size in GiB".into()),
            );
        }
        size
    };
    let flag_false = |key: &str, error: &mut Report<'_>| {
        if let Some(value) = arg(key)
            && value.value != Value::Bool(false)
        {
            error(
                value.at,
                format!("{} other than false is not supported", quoted(key)),
                None,
            );
        }
    };
    // Rally's servers boot without a NIC unless a network context or `nics` says otherwise.
    let server_create = |error: &mut Report<'_>| {
        let mut create = vec![(
            "network",
            Sp {
                value: Scalar("none".into()),
                at: run.at,
            },
        )];
        for key in ["flavor", "image"] {
            create.extend(
                arg(key)
                    .and_then(|v| named(v, key, error))
                    .map(|v| (key, v)),
            );
        }
        create
    };
    match scenario {
        "NovaServers.boot_and_delete_server" => {
            allowed(&["flavor", "image", "force_delete"], error);
            flag_false("force_delete", error);
            let create = server_create(error);
            streams.push(("server create", create, 1));
            streams.push(("server delete", Vec::new(), 1));
        }
        "CinderVolumes.create_and_delete_volume" => {
            allowed(&["size"], error);
            let size = size(error);
            streams.push((
                "volume create",
                size.map(|s| ("size", s)).into_iter().collect(),
                1,
            ));
            streams.push(("volume delete", Vec::new(), 1));
        }
        "CinderVolumes.create_and_attach_volume" => {
            allowed(&["size", "image", "flavor"], error);
            let create = server_create(error);
            let size = size(error);
            streams.push(("server create", create, 1));
            streams.push((
                "volume create",
                size.map(|s| ("size", s)).into_iter().collect(),
                1,
            ));
            streams.push(("server add volume", Vec::new(), 1));
            streams.push(("server remove volume", Vec::new(), 1));
            streams.push(("volume delete", Vec::new(), 1));
            streams.push(("server delete", Vec::new(), 1));
        }
        "NeutronNetworks.create_and_delete_networks" => {
            allowed(&["network_create_args"], error);
            empty_object("network_create_args", error);
            streams.push(("network create", Vec::new(), 1));
            streams.push(("network delete", Vec::new(), 1));
        }
        "NeutronNetworks.create_and_delete_ports" => {
            allowed(
                &[
                    "network_create_args",
                    "port_create_args",
                    "ports_per_network",
                ],
                error,
            );
            empty_object("network_create_args", error);
            empty_object("port_create_args", error);
            let per_network = match arg("ports_per_network") {
                Some(value) => match value.value.as_u64().filter(|n| (1..=100).contains(n)) {
                    Some(n) => n as u32,
                    None => {
                        error(
                            value.at,
                            "`ports_per_network` must be within 1..=100".into(),
                            None,
                        );
                        1
                    }
                },
                None => 1,
            };
            streams.push(("network create", Vec::new(), 1));
            streams.push(("port create", Vec::new(), per_network));
            streams.push(("port delete", Vec::new(), per_network));
            streams.push(("network delete", Vec::new(), 1));
        }
        "GlanceImages.create_and_delete_image" => {
            allowed(
                &["image_location", "container_format", "disk_format"],
                error,
            );
            let mut create = Vec::new();
            for key in ["container_format", "disk_format"] {
                if let Some(value) = arg(key) {
                    match scalar(value) {
                        Some(text) => create.push((key, text)),
                        None => error(value.at, format!("{} must be a name", quoted(key)), None),
                    }
                }
            }
            // The bytes are generated and uploaded by the runner: test traffic stays in the
            // cloud, and the image's size is what the campaign's `size` says.
            streams.push(("image create", create, 1));
            streams.push(("image delete", Vec::new(), 1));
        }
        _ => unreachable!("checked against SUPPORTED_SCENARIOS"),
    }
    for (command, params, multiplier) in streams {
        let rate = if multiplier == 1 {
            rate.clone()
        } else {
            scaled_rate(&rate, multiplier)
        };
        out.push(Sp {
            value: RawCommand {
                command: Sp {
                    value: command.to_owned(),
                    at: run.name.at,
                },
                rate: Some(rate),
                concurrency: Some(concurrency.clone()),
                params: (!params.is_empty()).then(|| Sp {
                    value: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    at: run.at,
                }),
            },
            at: run.name.at,
        });
    }
}

/// `2/s` times 10 is `20/s`; a rate that does not parse is left for the workload check to report.
fn scaled_rate(rate: &Sp<Scalar>, by: u32) -> Sp<Scalar> {
    let text = rate.value.0.trim();
    let scaled = text.split_once('/').and_then(|(count, unit)| {
        let count: f64 = count.trim().parse().ok()?;
        Some(format!("{}/{}", count * f64::from(by), unit.trim()))
    });
    Sp {
        value: Scalar(scaled.unwrap_or_else(|| text.to_owned())),
        at: rate.at,
    }
}
