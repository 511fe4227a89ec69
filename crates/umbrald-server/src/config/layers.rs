//! The configuration's layers, merged with figment: defaults < `[gpu] profile` < TOML <
//! environment < flags. Each layer's metadata names its origin, so that every problem can say
//! where its value came from.

use std::path::Path;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::error::{Origin, Problem};
use super::setting::Setting;
use super::values::{GpuProfile, SettingValue};
use super::Config;

/// Where the TOML layer comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Toml<'a> {
    /// No TOML.
    None,
    /// A file's path and its text.
    File(&'a Path, &'a str),
    /// Text given directly.
    Text(&'a str),
}

/// Everything above the defaults and the profile.
pub(crate) struct Inputs<'a> {
    /// The TOML layer.
    pub toml: Toml<'a>,
    /// Looks up an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Flags given: the setting and the flag's text.
    pub flags: &'a [(&'static Setting, String)],
}

// Metadata names that tell the layers apart.
const DEFAULT: &str = "default";
const PROFILE: &str = "profile";
const FILE: &str = "TOML file";
const TEXT: &str = "TOML text";
const ENV: &str = "environment variable";
const FLAG: &str = "flag";

/// One layer: its values and the metadata that names it.
#[derive(Debug, Clone)]
struct Layer {
    metadata: Metadata,
    data: Result<Dict, figment::Error>,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.data.clone().map(|dict| Profile::Default.collect(dict))
    }
}

impl Layer {
    /// A layer holding `raw` at the setting's path, from the environment or a flag: as a string
    /// for settings of text syntax, else read as a TOML value (a number, a boolean, a list);
    /// text that is no TOML value stays a string, which the setting then refuses.
    fn raw(metadata: Metadata, setting: &Setting, raw: &str) -> Self {
        let value = if setting.syntax.text {
            Value::from(raw)
        } else {
            toml_value(raw).unwrap_or_else(|| Value::from(raw))
        };
        Self {
            metadata,
            data: Ok(into_dict(figment::util::nest(setting.path, value))),
        }
    }

    fn from_config(metadata: Metadata, config: &Config) -> Self {
        Self {
            metadata,
            data: Value::serialize(config).map(into_dict),
        }
    }
}

/// `raw` read as the TOML value of a key.
fn toml_value(raw: &str) -> Option<Value> {
    let mut table: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
    Value::serialize(table.remove("v")?).ok()
}

fn into_dict(value: Value) -> Dict {
    match value {
        Value::Dict(_, dict) => dict,
        _ => Dict::new(),
    }
}

/// The values of `new` that differ from `old`.
fn changed(new: Dict, old: &Dict) -> Dict {
    new.into_iter()
        .filter_map(|(key, value)| match (value, old.get(&key)) {
            (Value::Dict(tag, dict), Some(Value::Dict(_, before))) => {
                let dict = changed(dict, before);
                (!dict.is_empty()).then_some((key, Value::Dict(tag, dict)))
            }
            (value, Some(before)) if value == *before => None,
            (value, _) => Some((key, value)),
        })
        .collect()
}

/// The merged layers.
pub struct Layers {
    figment: Figment,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers").finish_non_exhaustive()
    }
}

impl Layers {
    /// Merges the defaults, the profile that the other layers name, and `inputs`.
    pub(crate) fn new(inputs: &Inputs<'_>) -> Self {
        let defaults = Layer::from_config(Metadata::named(DEFAULT), &Config::default());
        let upper = upper_layers(inputs);
        let without_profile = upper
            .iter()
            .fold(Figment::from(defaults.clone()), |f, layer| {
                f.merge(layer.clone())
            });
        let profile: GpuProfile = without_profile
            .extract_inner("gpu.profile")
            .unwrap_or_default();
        let figment = upper.into_iter().fold(
            Figment::from(defaults).merge(profile_layer(profile)),
            |f, layer| f.merge(layer),
        );
        Self { figment }
    }

    /// Problems that keep any value from being read (a TOML syntax error).
    pub(crate) fn unreadable(&self) -> Vec<Problem> {
        match self.figment.extract::<Value>() {
            Ok(_) => Vec::new(),
            Err(error) => error.into_iter().map(|e| self.problem(e)).collect(),
        }
    }

    /// The value at `path`, or `default` with a problem added when it cannot be read.
    pub(crate) fn pick<T: SettingValue>(
        &self,
        path: &str,
        default: T,
        problems: &mut Vec<Problem>,
    ) -> T {
        match T::extract(&self.figment, path) {
            Ok(value) => value,
            Err(error) => {
                problems.extend(error.into_iter().map(|e| self.problem(e)));
                default
            }
        }
    }

    /// Where the value at `path` came from.
    pub(crate) fn origin(&self, path: &str) -> Origin {
        origin(self.figment.find_metadata(path))
    }

    /// A problem for every key that is neither a setting nor a section.
    pub(crate) fn unknown_keys(&self, sections: &[(&str, &[Setting])]) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Ok(data) = self.figment.data() {
            if let Some(dict) = data.get(&Profile::Default) {
                self.walk("", dict, sections, &mut problems);
            }
        }
        problems
    }

    fn walk(
        &self,
        prefix: &str,
        dict: &Dict,
        sections: &[(&str, &[Setting])],
        problems: &mut Vec<Problem>,
    ) {
        let settings = || sections.iter().flat_map(|(_, s)| s.iter());
        for (key, value) in dict {
            let path = match prefix {
                "" => key.clone(),
                _ => format!("{prefix}.{key}"),
            };
            if settings().any(|s| s.path == path) {
                continue;
            }
            let origin = origin(self.figment.get_metadata(value.tag()));
            if sections.iter().any(|(section, _)| *section == path) {
                match value {
                    Value::Dict(_, inner) => self.walk(&path, inner, sections, problems),
                    _ => problems.push(Problem {
                        message: format!("{path} must be a table"),
                        sources: vec![(path, origin)],
                    }),
                }
                continue;
            }
            let hint = settings()
                .find(|s| s.path.rsplit('.').next() == Some(key.as_str()))
                .map(|s| format!(" (did you mean {}?)", s.path))
                .unwrap_or_default();
            problems.push(Problem {
                message: format!("unknown key {path}{hint}"),
                sources: vec![(path, origin)],
            });
        }
    }

    fn problem(&self, error: figment::Error) -> Problem {
        let key = error.path.join(".");
        let origin = origin(error.metadata.as_ref());
        let message = match key.as_str() {
            "" => error.kind.to_string(),
            _ => format!("{key}: {}", error.kind),
        };
        Problem {
            message,
            sources: vec![(key, origin)],
        }
    }
}

/// The TOML, environment and flag layers, lowest first.
fn upper_layers(inputs: &Inputs<'_>) -> Vec<Layer> {
    let mut layers = Vec::new();
    match inputs.toml {
        Toml::None => {}
        Toml::File(path, text) => layers.push(toml_layer(Metadata::from(FILE, path), text)),
        Toml::Text(text) => layers.push(toml_layer(Metadata::named(TEXT), text)),
    }
    for (_, settings) in super::SECTIONS {
        for setting in settings.iter() {
            for var in setting.env_vars() {
                match (inputs.env)(&var) {
                    Some(raw) if !raw.is_empty() => {
                        let metadata = Metadata::named(ENV).source(var);
                        layers.push(Layer::raw(metadata, setting, &raw));
                    }
                    _ => {}
                }
            }
        }
    }
    for (setting, raw) in inputs.flags {
        let flag = format!("--{}", setting.flag.unwrap_or(setting.path));
        layers.push(Layer::raw(Metadata::named(FLAG).source(flag), setting, raw));
    }
    layers
}

fn toml_layer(metadata: Metadata, text: &str) -> Layer {
    use figment::providers::Format;
    let data = figment::providers::Toml::string(text)
        .data()
        .map(|mut map| map.remove(&Profile::Default).unwrap_or_default());
    Layer { metadata, data }
}

/// The values `profile` changes from the defaults.
fn profile_layer(profile: GpuProfile) -> Layer {
    let defaults = Config::default();
    let mut tuned = defaults.clone();
    profile.apply(&mut tuned);
    let data = match (Value::serialize(&tuned), Value::serialize(&defaults)) {
        (Ok(new), Ok(old)) => Ok(changed(into_dict(new), &into_dict(old))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    Layer {
        metadata: Metadata::named(PROFILE).source(profile.as_str()),
        data,
    }
}

fn origin(metadata: Option<&Metadata>) -> Origin {
    let Some(metadata) = metadata else {
        return Origin::Default;
    };
    let source = metadata.source.as_ref();
    let custom = || {
        source
            .and_then(|s| s.custom())
            .unwrap_or_default()
            .to_owned()
    };
    match metadata.name.as_ref() {
        PROFILE => Origin::Profile(custom()),
        FILE => Origin::File(
            source
                .and_then(|s| s.file_path())
                .map(Path::to_owned)
                .unwrap_or_default(),
        ),
        TEXT => Origin::Text,
        ENV => Origin::Env(custom()),
        FLAG => Origin::Flag(custom()),
        _ => Origin::Default,
    }
}
