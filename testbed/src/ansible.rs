//! Ansible inventories as kolla-ansible and OpenStack-Ansible ship them: the INI format
//! (`[group]` host lines with `key=value` variables, `[group:children]`, `[group:vars]`, ranges
//! like `compute[01:10]`) and the JSON that `ansible-inventory --list` prints and OSA's generator
//! writes (`{"_meta": {"hostvars": …}, GROUP: {"hosts", "children", "vars"}}`). Both become one
//! [`AnsibleInventory`]; what cannot be understood is reported as `file:line:col: message; hint`,
//! every problem of the file at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// One group: its own hosts, its child groups and its variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Hosts listed directly in the group, in file order.
    pub hosts: Vec<String>,
    /// Child groups, in file order.
    pub children: Vec<String>,
    /// `[group:vars]` (or the JSON `vars`).
    pub vars: BTreeMap<String, Value>,
}

/// A parsed inventory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnsibleInventory {
    /// Groups by name (`all` and `ungrouped` included when used).
    pub groups: BTreeMap<String, Group>,
    /// Variables given on a host's own line (or `_meta.hostvars`), by host; every host appears.
    pub hostvars: BTreeMap<String, BTreeMap<String, Value>>,
    /// Every host in the order it first appears.
    pub host_order: Vec<String>,
}

/// The most problems reported for one file: past them it is likely not an inventory at all.
const MAX_PROBLEMS: usize = 20;

/// One problem at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    line: usize,
    col: usize,
    message: String,
    hint: &'static str,
}

impl AnsibleInventory {
    /// Reads an inventory file: JSON when it starts with `{`, INI otherwise.
    pub fn parse(path: &Path, text: &str) -> Result<AnsibleInventory> {
        if text.trim_start().starts_with('{') {
            Self::parse_json(path, text)
        } else {
            Self::parse_ini(path, text)
        }
    }

    /// Parses the INI format.
    pub fn parse_ini(path: &Path, text: &str) -> Result<AnsibleInventory> {
        let mut inventory = AnsibleInventory::default();
        let mut problems = Vec::new();
        // The section lines go to: hosts of a group, children of a group, or vars of a group.
        enum Section {
            Hosts(String),
            Children(String),
            Vars(String),
        }
        let mut section = Section::Hosts("ungrouped".to_owned());
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let indent = raw.len() - raw.trim_start().len();
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let col = indent + 1;
            if let Some(header) = line.strip_prefix('[') {
                let Some(end) = header.find(']') else {
                    problems.push(Problem {
                        line: line_no,
                        col,
                        message: "section header has no closing `]`".to_owned(),
                        hint: "write `[group]`, `[group:children]` or `[group:vars]`",
                    });
                    continue;
                };
                let rest = header[end + 1..].trim();
                if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with(';') {
                    problems.push(Problem {
                        line: line_no,
                        col: col
                            + end
                            + 2
                            + (header[end + 1..].len() - header[end + 1..].trim_start().len()),
                        message: "text after the section header".to_owned(),
                        hint: "a section header stands alone on its line",
                    });
                }
                let name = &header[..end];
                let (group, kind) = match name.split_once(':') {
                    Some((group, kind)) => (group, Some(kind)),
                    None => (name, None),
                };
                if !valid_group(group) {
                    problems.push(Problem {
                        line: line_no,
                        col: col + 1,
                        message: format!("bad group name {}", userinput::echo::quoted(group)),
                        hint: "group names use letters, digits, `_` and `-`",
                    });
                    continue;
                }
                inventory.groups.entry(group.to_owned()).or_default();
                section = match kind {
                    None => Section::Hosts(group.to_owned()),
                    Some("children") => Section::Children(group.to_owned()),
                    Some("vars") => Section::Vars(group.to_owned()),
                    Some(other) => {
                        problems.push(Problem {
                            line: line_no,
                            col: col + 2 + group.len(),
                            message: format!(
                                "unknown section kind {}",
                                userinput::echo::quoted(other)
                            ),
                            hint: "Ansible knows `:children` and `:vars`",
                        });
                        continue;
                    }
                };
                continue;
            }
            match &section {
                Section::Hosts(group) => {
                    let tokens = match split_words(raw) {
                        Ok(tokens) => tokens,
                        Err((at, message)) => {
                            problems.push(Problem {
                                line: line_no,
                                col: at + 1,
                                message,
                                hint: "close the quote",
                            });
                            continue;
                        }
                    };
                    let Some(((pattern_at, pattern), vars)) = tokens.split_first() else {
                        continue;
                    };
                    let hosts = match expand_pattern(pattern) {
                        Ok(hosts) => hosts,
                        Err((offset, message)) => {
                            let hint = if message.contains("host name") {
                                "a host is a name or address, then `key=value` variables"
                            } else {
                                "a range is `[START:END]` or `[START:END:STEP]`, e.g. `compute[01:10]`"
                            };
                            problems.push(Problem {
                                line: line_no,
                                col: pattern_at + offset + 1,
                                message,
                                hint,
                            });
                            continue;
                        }
                    };
                    let mut line_vars = BTreeMap::new();
                    for (word, (at, token)) in vars.iter().enumerate() {
                        match token.split_once('=') {
                            Some((key, value)) if valid_var(key) => {
                                line_vars.insert(key.to_owned(), Value::String(value.to_owned()));
                            }
                            _ => problems.push(Problem {
                                line: line_no,
                                col: at + 1,
                                // The word itself is not shown: a file named by mistake (a
                                // secrets file) must not have its values echoed.
                                message: format!(
                                    "word {} after the host is not `key=value`",
                                    word + 1
                                ),
                                hint: "host variables are `name=value` words, e.g. `ansible_host=10.0.0.5`",
                            }),
                        }
                    }
                    for host in hosts {
                        inventory.add_host(group, &host, line_vars.clone());
                    }
                }
                Section::Children(group) => {
                    if !valid_group(line) {
                        problems.push(Problem {
                            line: line_no,
                            col,
                            message: format!(
                                "bad child group name {}",
                                userinput::echo::quoted(line)
                            ),
                            hint: "a `:children` section lists one group name per line",
                        });
                        continue;
                    }
                    inventory.groups.entry(line.to_owned()).or_default();
                    let children = &mut inventory.groups.entry(group.clone()).or_default().children;
                    if !children.iter().any(|c| c == line) {
                        children.push(line.to_owned());
                    }
                }
                Section::Vars(group) => {
                    let Some((key, value)) = line.split_once('=') else {
                        problems.push(Problem {
                            line: line_no,
                            col,
                            message: "expected `key=value`".to_owned(),
                            hint: "a `:vars` section holds one `name=value` per line",
                        });
                        continue;
                    };
                    let key = key.trim();
                    if !valid_var(key) {
                        problems.push(Problem {
                            line: line_no,
                            col,
                            message: format!("bad variable name {}", userinput::echo::quoted(key)),
                            hint: "variable names use letters, digits and `_`",
                        });
                        continue;
                    }
                    let value = unquote(value.trim());
                    inventory
                        .groups
                        .entry(group.clone())
                        .or_default()
                        .vars
                        .insert(key.to_owned(), Value::String(value));
                }
            }
        }
        if let Some(cycle) = inventory.cycle() {
            problems.push(Problem {
                line: 1,
                col: 1,
                message: format!("groups are their own children: {}", cycle.join(" -> ")),
                hint: "remove one of the `:children` entries",
            });
        }
        if problems.is_empty() {
            Ok(inventory)
        } else {
            let more = problems.len().saturating_sub(MAX_PROBLEMS);
            let mut lines: Vec<String> = problems
                .into_iter()
                .take(MAX_PROBLEMS)
                .map(|p| {
                    format!(
                        "{}:{}:{}: {}; {}",
                        path.display(),
                        p.line,
                        p.col,
                        p.message,
                        p.hint
                    )
                })
                .collect();
            if more > 0 {
                lines.push(format!(
                    "{}: {more} more problems; is it an Ansible inventory?",
                    path.display()
                ));
            }
            Err(Error::Located(lines))
        }
    }

    /// Parses `ansible-inventory --list` JSON (or OSA's `openstack_inventory.json`, the same
    /// shape with more keys per group).
    pub fn parse_json(path: &Path, text: &str) -> Result<AnsibleInventory> {
        let located = |message: String, line: usize, col: usize, hint: &str| {
            Error::Located(vec![format!(
                "{}:{line}:{col}: {message}; {hint}",
                path.display()
            )])
        };
        let value: Value = serde_json::from_str(text).map_err(|e| {
            located(
                format!("not valid JSON: {}", json_reason(&e)),
                e.line(),
                e.column(),
                "an Ansible JSON inventory is what `ansible-inventory --list` prints",
            )
        })?;
        let Value::Object(top) = value else {
            return Err(located(
                "the inventory is not a JSON object".to_owned(),
                1,
                1,
                "expected `{\"_meta\": …, \"all\": …}`",
            ));
        };
        let mut inventory = AnsibleInventory::default();
        let mut problems = Vec::new();
        let strings = |value: Option<&Value>,
                       what: &str,
                       group: &str,
                       problems: &mut Vec<String>| {
            match value {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|item| match item {
                        Value::String(s) => Some(s.clone()),
                        _ => {
                            problems.push(format!(
                                "group {group:?}: an entry of `{what}` is not a string"
                            ));
                            None
                        }
                    })
                    .collect(),
                Some(_) => {
                    problems.push(format!("group {group:?}: `{what}` is not a list"));
                    Vec::new()
                }
            }
        };
        for (name, body) in &top {
            if name == "_meta" {
                continue;
            }
            let body = match body {
                Value::Object(body) => body,
                // The old script format: a group as a bare list of hosts.
                Value::Array(_) => {
                    for host in strings(Some(body), "hosts", name, &mut problems) {
                        inventory.add_host(name, &host, BTreeMap::new());
                    }
                    continue;
                }
                _ => {
                    problems.push(format!("group {name:?} is neither an object nor a list"));
                    continue;
                }
            };
            inventory.groups.entry(name.clone()).or_default();
            for host in strings(body.get("hosts"), "hosts", name, &mut problems) {
                inventory.add_host(name, &host, BTreeMap::new());
            }
            for child in strings(body.get("children"), "children", name, &mut problems) {
                inventory.groups.entry(child.clone()).or_default();
                let children = &mut inventory.groups.entry(name.clone()).or_default().children;
                if !children.contains(&child) {
                    children.push(child);
                }
            }
            if let Some(Value::Object(vars)) = body.get("vars") {
                inventory
                    .groups
                    .entry(name.clone())
                    .or_default()
                    .vars
                    .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if let Some(Value::Object(hostvars)) =
            top.get("_meta").and_then(|meta| meta.get("hostvars"))
        {
            for (host, vars) in hostvars {
                let Value::Object(vars) = vars else {
                    problems.push(format!("the variables of host {host:?} are not an object"));
                    continue;
                };
                if !inventory.hostvars.contains_key(host) {
                    inventory.host_order.push(host.clone());
                }
                inventory
                    .hostvars
                    .entry(host.clone())
                    .or_default()
                    .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if let Some(cycle) = inventory.cycle() {
            problems.push(format!(
                "groups are their own children: {}",
                cycle.join(" -> ")
            ));
        } else {
            // JSON objects come back sorted by key: the order of hosts is that of a walk from
            // `all` through the (ordered) `children` and `hosts` lists, as Ansible lists them.
            let mut order = Vec::new();
            let mut seen = BTreeSet::new();
            inventory.walk("all", &mut BTreeSet::new(), &mut |host| {
                if seen.insert(host.to_owned()) {
                    order.push(host.to_owned());
                }
            });
            for host in &inventory.host_order {
                if seen.insert(host.clone()) {
                    order.push(host.clone());
                }
            }
            inventory.host_order = order;
        }
        if problems.is_empty() {
            Ok(inventory)
        } else {
            // JSON values carry no positions once parsed; the group or host names the place.
            Err(Error::Located(
                problems
                    .into_iter()
                    .map(|p| format!("{}: {p}", path.display()))
                    .collect(),
            ))
        }
    }

    fn add_host(&mut self, group: &str, host: &str, vars: BTreeMap<String, Value>) {
        let hosts = &mut self.groups.entry(group.to_owned()).or_default().hosts;
        if !hosts.iter().any(|h| h == host) {
            hosts.push(host.to_owned());
        }
        if !self.hostvars.contains_key(host) {
            self.host_order.push(host.to_owned());
        }
        self.hostvars
            .entry(host.to_owned())
            .or_default()
            .extend(vars);
    }

    fn walk<'a>(
        &'a self,
        group: &'a str,
        visited: &mut BTreeSet<&'a str>,
        each: &mut impl FnMut(&str),
    ) {
        if !visited.insert(group) {
            return;
        }
        if let Some(g) = self.groups.get(group) {
            for child in &g.children {
                self.walk(child, visited, each);
            }
            for host in &g.hosts {
                each(host);
            }
        }
    }

    /// A chain of groups that contains itself through `children`, if any.
    fn cycle(&self) -> Option<Vec<String>> {
        fn visit<'a>(
            inventory: &'a AnsibleInventory,
            group: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(start) = path.iter().position(|g| *g == group) {
                let mut cycle: Vec<String> =
                    path[start..].iter().map(|g| (*g).to_owned()).collect();
                cycle.push(group.to_owned());
                return Some(cycle);
            }
            if !done.insert(group) {
                return None;
            }
            path.push(group);
            for child in inventory
                .groups
                .get(group)
                .map(|g| &g.children[..])
                .unwrap_or(&[])
            {
                if let Some(cycle) = visit(inventory, child, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        self.groups
            .keys()
            .find_map(|group| visit(self, group, &mut Vec::new(), &mut done))
    }

    /// Every host of a group, its children's included, in inventory order.
    pub fn hosts_of(&self, group: &str) -> Vec<String> {
        let mut seen_groups = BTreeSet::new();
        let mut members = BTreeSet::new();
        let mut stack = vec![group.to_owned()];
        while let Some(name) = stack.pop() {
            if !seen_groups.insert(name.clone()) {
                continue;
            }
            if name == "all" {
                members.extend(self.host_order.iter().cloned());
            }
            if let Some(g) = self.groups.get(&name) {
                members.extend(g.hosts.iter().cloned());
                stack.extend(g.children.iter().cloned());
            }
        }
        self.host_order
            .iter()
            .filter(|h| members.contains(*h))
            .cloned()
            .collect()
    }

    /// Whether the group exists.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// A variable of a host as Ansible resolves it here: the host's own, else the group closest
    /// to the host that sets it (a child group's over its parents'), else `all:vars`.
    pub fn var(&self, host: &str, name: &str) -> Option<&Value> {
        if let Some(value) = self.hostvars.get(host).and_then(|vars| vars.get(name)) {
            return Some(value);
        }
        self.groups
            .iter()
            .filter(|(group, g)| {
                g.vars.contains_key(name) && self.hosts_of(group).iter().any(|h| h == host)
            })
            .max_by_key(|(group, _)| self.depth(group))
            .and_then(|(_, g)| g.vars.get(name))
    }

    /// A variable as text (numbers and booleans shown as Ansible would).
    pub fn var_text(&self, host: &str, name: &str) -> Option<String> {
        match self.var(host, name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// How many `children` links lie between `all` (or a top group) and this group, at most.
    fn depth(&self, group: &str) -> usize {
        let mut depth = 0;
        let mut frontier: BTreeSet<&str> = BTreeSet::from([group]);
        let mut seen = BTreeSet::new();
        loop {
            let parents: BTreeSet<&str> = self
                .groups
                .iter()
                .filter(|(_, g)| g.children.iter().any(|c| frontier.contains(c.as_str())))
                .map(|(name, _)| name.as_str())
                .filter(|name| seen.insert(*name))
                .collect();
            if parents.is_empty() {
                return depth + usize::from(group != "all");
            }
            depth += 1;
            frontier = parents;
        }
    }
}

fn json_reason(error: &serde_json::Error) -> String {
    // serde_json's message ends in " at line L column C"; the location is given separately.
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn valid_group(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn valid_var(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return value[1..value.len() - 1].to_owned();
        }
    }
    value.to_owned()
}

/// Splits a host line into words as Ansible does (shell-like: quotes group, `#` at a word's start
/// begins a comment); each word with its byte offset in the line.
fn split_words(line: &str) -> Result<Vec<(usize, String)>, (usize, String)> {
    let mut words = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut word = String::new();
        while let Some(&(at, c)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' || c == '\'' {
                let mut closed = false;
                for (_, inner) in chars.by_ref() {
                    if inner == c {
                        closed = true;
                        break;
                    }
                    word.push(inner);
                }
                if !closed {
                    return Err((at, format!("unterminated {c} quote")));
                }
            } else {
                word.push(c);
            }
        }
        words.push((start, word));
    }
    Ok(words)
}

/// Expands a host pattern with `[a:b]` or `[a:b:step]` ranges (numeric, keeping the start's
/// zero padding, or single letters). The error carries the byte offset in the pattern.
fn expand_pattern(pattern: &str) -> Result<Vec<String>, (usize, String)> {
    let Some(open) = pattern.find('[') else {
        if pattern.contains(']') {
            return Err((pattern.find(']').unwrap_or(0), "`]` without `[`".to_owned()));
        }
        return check_host(pattern).map(|()| vec![pattern.to_owned()]);
    };
    let Some(close) = pattern[open..].find(']').map(|c| c + open) else {
        return Err((open, "range has no closing `]`".to_owned()));
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let parts: Vec<&str> = body.split(':').collect();
    let (start, end, step) = match parts.as_slice() {
        [start, end] => (*start, *end, "1"),
        [start, end, step] => (*start, *end, *step),
        _ => return Err((open, format!("bad range `[{body}]`"))),
    };
    let step: usize = match step.parse() {
        Ok(step) if step > 0 => step,
        _ => return Err((open, format!("bad step in range `[{body}]`"))),
    };
    let items: Vec<String> = if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err((open, format!("range `[{body}]` ends before it starts")));
        }
        // Ansible pads to the start's width when the start has a leading zero.
        let width = if start.len() > 1 && start.starts_with('0') {
            start.len()
        } else {
            0
        };
        (a..=b)
            .step_by(step)
            .map(|n| format!("{n:0width$}"))
            .collect()
    } else if let ([a], [b]) = (start.as_bytes(), end.as_bytes())
        && a.is_ascii_alphabetic()
        && b.is_ascii_alphabetic()
    {
        if a > b {
            return Err((open, format!("range `[{body}]` ends before it starts")));
        }
        (*a..=*b)
            .step_by(step)
            .map(|c| (c as char).to_string())
            .collect()
    } else {
        return Err((
            open,
            format!("bad range `[{body}]`: numbers or single letters"),
        ));
    };
    let mut hosts = Vec::new();
    for item in items {
        // A pattern may hold several ranges: expand the rest recursively.
        let rest = expand_pattern(&format!("{item}{tail}"))
            .map_err(|(at, message)| (close + 1 + at.saturating_sub(item.len()), message))?;
        hosts.extend(rest.into_iter().map(|r| format!("{head}{r}")));
    }
    Ok(hosts)
}

fn check_host(host: &str) -> Result<(), (usize, String)> {
    match host
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || "._-:".contains(*c)))
    {
        Some((at, c)) => Err((
            at,
            format!("unexpected {} in a host name", c.escape_default()),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str) -> AnsibleInventory {
        AnsibleInventory::parse_ini(Path::new("inv"), text).unwrap()
    }

    fn errors(text: &str) -> Vec<String> {
        match AnsibleInventory::parse_ini(Path::new("inv"), text) {
            Err(Error::Located(lines)) => lines,
            other => panic!("expected located errors, got {other:?}"),
        }
    }

    #[test]
    fn ranges_expand_with_the_start_padding_and_steps() {
        assert_eq!(
            expand_pattern("compute[01:03]").unwrap(),
            ["compute01", "compute02", "compute03"]
        );
        assert_eq!(expand_pattern("n[8:10]").unwrap(), ["n8", "n9", "n10"]);
        assert_eq!(expand_pattern("n[0:6:3]").unwrap(), ["n0", "n3", "n6"]);
        assert_eq!(
            expand_pattern("rack[a:b]-[1:2]").unwrap(),
            ["racka-1", "racka-2", "rackb-1", "rackb-2"]
        );
        assert!(expand_pattern("n[3:1]").is_err());
        assert!(expand_pattern("n[1:x2]").is_err());
        assert!(expand_pattern("n[1:2").is_err());
    }

    #[test]
    fn children_vars_and_host_vars_resolve_as_ansible_does() {
        let inventory = ini("\
[control]
control[01:02] ansible_user=kolla
[compute]
compute01 ansible_host=10.0.0.9 \"ansible_ssh_common_args=-o X=1\" # a comment
[nova:children]
control
[nova-api:children]
nova
[all:vars]
ansible_user=root
[compute:vars]
ansible_port='2222'
");
        assert_eq!(inventory.hosts_of("nova-api"), ["control01", "control02"]);
        assert_eq!(
            inventory.hosts_of("all"),
            ["control01", "control02", "compute01"]
        );
        assert_eq!(
            inventory.var_text("control01", "ansible_user").unwrap(),
            "kolla"
        );
        assert_eq!(
            inventory.var_text("compute01", "ansible_user").unwrap(),
            "root"
        );
        assert_eq!(
            inventory.var_text("compute01", "ansible_port").unwrap(),
            "2222"
        );
        assert_eq!(
            inventory
                .var_text("compute01", "ansible_ssh_common_args")
                .unwrap(),
            "-o X=1"
        );
    }

    #[test]
    fn what_cannot_be_understood_is_located() {
        let lines = errors(
            "\
[control
[compute]
compute01 ansible_host
node[3:1]
[x:child]
[a:children]
b
[b:children]
a
",
        );
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn json_inventories_share_the_model() {
        let inventory = AnsibleInventory::parse_json(
            Path::new("inv.json"),
            r#"{"_meta": {"hostvars": {"c1": {"ansible_host": "10.0.0.1"}}},
                "all": {"children": ["control", "ungrouped"]},
                "control": {"hosts": ["c1"]},
                "nova": {"children": ["control"]}}"#,
        )
        .unwrap();
        assert_eq!(inventory.hosts_of("nova"), ["c1"]);
        assert_eq!(
            inventory.var_text("c1", "ansible_host").unwrap(),
            "10.0.0.1"
        );
        let error = AnsibleInventory::parse_json(Path::new("inv.json"), "{\n  \"a\": [1,\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("inv.json:3:"), "{error}");
    }
}
