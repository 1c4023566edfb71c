//! The manifest's schema: every check that needs only the text of one file.

use std::collections::BTreeMap;
use std::sync::Arc;

use egress_gate::{EgressRule, HostPattern};
use jsonc_parser::ast::Value;
use jsonc_parser::{CollectOptions, ParseOptions};

use super::json::{Located, Reader};
use super::{Agent, Bottle, Egress, SshHost};
use crate::env::{EnvEntry, EnvSpec, RESERVED_NAMES, is_valid_name};
use crate::error::{Error, Result, Source, Span};

pub(super) struct File {
    pub(super) bottles: BTreeMap<String, Bottle>,
    pub(super) agents: BTreeMap<String, Agent>,
}

/// Plain JSON only, so a file that loads here loads in every other JSON tool.
const STRICT_JSON: ParseOptions = ParseOptions {
    allow_comments: false,
    allow_loose_object_property_names: false,
    allow_trailing_commas: false,
    allow_missing_commas: false,
    allow_single_quoted_strings: false,
    allow_hexadecimal_numbers: false,
    allow_unary_plus_numbers: false,
    allow_bare_decimal_point_numbers: false,
    allow_non_finite_numbers: false,
    allow_extended_string_escapes: false,
};

pub(super) fn file(source: &Arc<Source>) -> Result<File> {
    let reader = Reader {
        source: source.clone(),
    };
    let parsed = jsonc_parser::parse_to_ast(&source.text, &CollectOptions::default(), &STRICT_JSON)
        .map_err(|err| {
            let range = err.range();
            Error::new(format!(
                "{} is not valid JSON: {}",
                source.path.display(),
                err.kind()
            ))
            .at(&Span {
                source: source.clone(),
                range: range.start..range.end,
            })
            .hint("the manifest is plain JSON: no comments, no trailing commas, keys in double quotes")
        })?;
    let Some(root) = parsed.value else {
        return Err(Error::new(format!("{} is empty", source.path.display()))
            .hint("write {\"bottles\": {}, \"agents\": {}} and add your bottles and agents"));
    };
    // `$schema` names the JSON Schema for editors; the loader ignores it.
    let top = reader.record(&root, "(top level)", &["$schema", "bottles", "agents"])?;
    if let Some(schema) = top.get("$schema") {
        reader.string(schema, "$schema")?;
    }
    let mut file = File {
        bottles: BTreeMap::new(),
        agents: BTreeMap::new(),
    };
    if let Some(bottles) = top.get("bottles") {
        for (name, value) in reader.entries(bottles, "bottles")? {
            let bottle = bottle(&reader, &name, value)?;
            file.bottles.insert(name.value, bottle);
        }
    }
    if let Some(agents) = top.get("agents") {
        for (name, value) in reader.entries(agents, "agents")? {
            let agent = agent(&reader, &name, value)?;
            file.agents.insert(name.value, agent);
        }
    }
    Ok(file)
}

fn check_name(name: &Located<String>, what: &str) -> Result<()> {
    if name.value.trim().is_empty() || name.value.chars().any(char::is_control) {
        return Err(Error::new(format!(
            "{what} name `{}` is empty or has control characters",
            name.value
        ))
        .at(&name.at)
        .hint("use letters, digits, `-` and `_`"));
    }
    Ok(())
}

fn bottle(reader: &Reader, name: &Located<String>, value: &Value<'_>) -> Result<Bottle> {
    check_name(name, "bottle")?;
    let path = format!("bottles.{}", name.value);
    let record = reader.record(value, &path, &["env", "ssh", "egress"])?;
    let mut env = Vec::new();
    if let Some(value) = record.get("env") {
        for (var, value) in reader.entries(value, &format!("{path}.env"))? {
            env.push(env_entry(reader, &path, var, value)?);
        }
    }
    env.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ssh = Vec::new();
    if let Some(value) = record.get("ssh") {
        for (i, value) in reader
            .list(value, &format!("{path}.ssh"))?
            .iter()
            .enumerate()
        {
            ssh.push(ssh_host(reader, &format!("{path}.ssh[{i}]"), value)?);
        }
    }
    let egress = match record.get("egress") {
        Some(value) => egress(reader, &format!("{path}.egress"), value)?,
        None => Egress {
            allowlist: Vec::new(),
            private: Vec::new(),
            builtin: true,
        },
    };
    Ok(Bottle {
        name: name.value.clone(),
        env,
        ssh,
        egress,
    })
}

fn env_entry(
    reader: &Reader,
    path: &str,
    var: Located<String>,
    value: &Value<'_>,
) -> Result<EnvEntry> {
    if !is_valid_name(&var.value) {
        return Err(Error::new(format!(
            "`{}` is not a valid environment variable name",
            var.value
        ))
        .at(&var.at)
        .hint("start with a letter or `_`, then letters, digits and `_`"));
    }
    if RESERVED_NAMES.contains(&var.value.as_str()) {
        return Err(Error::new(format!("`{}` is set by claude-bottle itself", var.value))
            .at(&var.at)
            .hint(if var.value == crate::env::CLAUDE_OAUTH_TOKEN {
                "set CLAUDE_BOTTLE_OAUTH_TOKEN on the host instead; it is forwarded under this name"
            } else {
                "the bottle's proxy variables point at its egress gate; list hosts under egress.allowlist"
            }));
    }
    let Value::StringLit(_) = value else {
        // Not quoted: the value is not shown in the message, only its place.
        return Err(Error::new(format!("`{path}.env.{}` must be a string", var.value))
            .at_unquoted(&reader.span(value))
            .hint("write \"?\" to be asked, \"${VAR}\" to copy a host variable, or the value itself"));
    };
    let text = reader.string(value, "")?;
    let spec = EnvSpec::parse(&text.value);
    if let EnvSpec::Literal(literal) = &spec {
        if literal.contains(['\n', '\r']) {
            return Err(Error::new(format!("the value of `{}` has a line break", var.value))
                .at_unquoted(&text.at)
                .hint("environment values given in the manifest are single lines; use \"${VAR}\" for others"));
        }
    }
    Ok(EnvEntry {
        name: var.value,
        spec,
        at: text.at,
    })
}

fn ssh_host(reader: &Reader, path: &str, value: &Value<'_>) -> Result<SshHost> {
    let record = reader.record(
        value,
        path,
        &[
            "Host",
            "Hostname",
            "User",
            "Port",
            "IdentityFile",
            "KnownHostKey",
        ],
    )?;
    let optional = |key: &str| -> Result<Option<Located<String>>> {
        record
            .get(key)
            .map(|v| reader.string(v, &format!("{path}.{key}")))
            .transpose()
    };
    let host = reader.string(
        record.require(reader, "Host", path)?,
        &format!("{path}.Host"),
    )?;
    if host.value.is_empty()
        || host
            .value
            .contains(|c: char| c.is_whitespace() || c == '*' || c == '?')
    {
        return Err(Error::new(format!(
            "`{path}.Host` must be one alias without spaces or patterns"
        ))
        .at(&host.at)
        .hint("write the short name the agent will use, e.g. \"gitea\""));
    }
    let hostname = optional("Hostname")?;
    if let Some(name) = &hostname {
        let plain = matches!(
            name.value.parse::<EgressRule>(),
            Ok(EgressRule {
                host: HostPattern::Name(_) | HostPattern::Address(_),
                port: None
            })
        );
        if !plain {
            return Err(Error::new(format!("`{path}.Hostname` must be a host name or address"))
                .at(&name.at)
                .hint("write the name only, e.g. \"gitea.example.com\"; the port goes in \"Port\""));
        }
    }
    let identity_file = reader.string(
        record.require(reader, "IdentityFile", path)?,
        &format!("{path}.IdentityFile"),
    )?;
    let port = record
        .get("Port")
        .map(|v| reader.port(v, &format!("{path}.Port")))
        .transpose()?;
    Ok(SshHost {
        host: host.value,
        hostname: hostname.map(|h| h.value),
        user: optional("User")?.map(|u| u.value),
        port,
        identity_file,
        known_host_key: optional("KnownHostKey")?.map(|k| k.value),
    })
}

fn egress(reader: &Reader, path: &str, value: &Value<'_>) -> Result<Egress> {
    let record = reader.record(value, path, &["allowlist", "private", "builtin"])?;
    let rules = |key: &str| -> Result<Vec<Located<EgressRule>>> {
        let Some(value) = record.get(key) else {
            return Ok(Vec::new());
        };
        reader
            .strings(value, &format!("{path}.{key}"))?
            .into_iter()
            .map(|entry| {
                let rule = entry.value.parse::<EgressRule>().map_err(|err| {
                    Error::new(format!("egress entry `{}` {err}", entry.value))
                        .at(&entry.at)
                        .hint(err.hint())
                })?;
                Ok(Located {
                    value: rule,
                    at: entry.at,
                })
            })
            .collect()
    };
    let allowlist = rules("allowlist")?;
    let private = rules("private")?;
    for entry in &private {
        if !allowlist.iter().any(|a| a.value == entry.value) {
            return Err(Error::new(format!("`{}` is in {path}.private but not in the allowlist", entry.value))
                .at(&entry.at)
                .hint("`private` only marks allowlist entries that may resolve to private addresses; add it to `allowlist` too"));
        }
    }
    let builtin = record
        .get("builtin")
        .map(|v| reader.boolean(v, &format!("{path}.builtin")))
        .transpose()?
        .unwrap_or(true);
    Ok(Egress {
        allowlist: allowlist.into_iter().map(|r| r.value).collect(),
        private: private.into_iter().map(|r| r.value).collect(),
        builtin,
    })
}

fn agent(reader: &Reader, name: &Located<String>, value: &Value<'_>) -> Result<Agent> {
    check_name(name, "agent")?;
    let path = format!("agents.{}", name.value);
    let record = reader.record(value, &path, &["bottle", "skills", "prompt", "default"])?;
    let default = match record.get("default") {
        Some(value) => reader
            .boolean(value, &format!("{path}.default"))?
            .then(|| reader.span(value)),
        None => None,
    };
    let bottle = reader.string(
        record.require(reader, "bottle", &path)?,
        &format!("{path}.bottle"),
    )?;
    let skills = match record.get("skills") {
        Some(value) => reader.strings(value, &format!("{path}.skills"))?,
        None => Vec::new(),
    };
    for skill in &skills {
        let s = skill.value.as_str();
        if s.is_empty() || s.starts_with('.') || s.contains(['/', '\\']) {
            return Err(Error::new(format!("skill `{s}` is not a folder name"))
                .at(&skill.at)
                .hint("name a folder under ~/.claude/skills/, e.g. \"tdd\""));
        }
    }
    let prompt = record
        .get("prompt")
        .map(|v| reader.string(v, &format!("{path}.prompt")))
        .transpose()?
        .map(|p| p.value);
    Ok(Agent {
        name: name.value.clone(),
        bottle,
        skills,
        prompt,
        default,
    })
}
