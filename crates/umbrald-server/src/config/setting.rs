//! The definition of a setting, and the `section!` macro that declares each section's settings
//! once: field, default, TOML key, environment variables and flag all come from that one place.

use super::layers::Layers;
use super::values::Syntax;

/// One setting as the configuration's layers know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The TOML key with its section, e.g. `batcher.max_queue_items`.
    pub path: &'static str,
    /// The field's documentation.
    pub doc: &'static str,
    /// Older environment variable names that still set it, highest precedence first, all
    /// below [`Setting::env_var`].
    pub env_aliases: &'static [&'static str],
    /// The `umbrald serve` / `config check` flag (without `--`), for operational settings only.
    pub flag: Option<&'static str>,
    /// How its text is read from the environment or a flag.
    pub syntax: Syntax,
}

impl Setting {
    /// The environment variable named after the key: `UMBRALD_<SECTION>_<KEY>`, e.g.
    /// `UMBRALD_GPU_TUNING_HOST_THREADS` for `gpu.tuning.host_threads`.
    pub fn env_var(&self) -> String {
        format!(
            "UMBRALD_{}",
            self.path.replace('.', "_").to_ascii_uppercase()
        )
    }

    /// Every environment variable that sets it, lowest precedence first.
    pub fn env_vars(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .env_aliases
            .iter()
            .rev()
            .map(|a| (*a).to_owned())
            .collect();
        names.push(self.env_var());
        names
    }

    /// The first paragraph of its documentation on one line (flag help).
    pub fn summary(&self) -> String {
        self.doc
            .lines()
            .map(str::trim)
            .take_while(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A section of the configuration, declared with `section!`.
pub trait Section: Sized {
    /// Its TOML table, e.g. `gpu.tuning`.
    const PATH: &'static str;
    /// Its settings (not those of nested sections).
    const SETTINGS: &'static [Setting];

    /// Reads the section from the layers; a value that cannot be read keeps its default and
    /// adds a problem.
    fn extract(layers: &Layers, problems: &mut Vec<super::Problem>) -> Self;
}

/// Declares a section struct, its `Default` and its [`Section`] table. Each setting is written
/// once: doc, optional serde attributes, field, type, default, older environment variable names
/// (`env [...]`), and the flag of an operational setting (`flag "name"`). Nested sections follow
/// in a `nested { ... }` block.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident at $path:literal {
            $(
                $(#[doc = $doc:literal])*
                $(#[serde($($serde:tt)*)])*
                $field:ident : $ty:ty = $default:expr
                    $(, env [$($alias:literal),* $(,)?])?
                    $(, flag $flag:literal)?
                    ;
            )*
        }
        $(
            nested {
                $(
                    $(#[doc = $ndoc:literal])*
                    $nfield:ident : $nty:ty;
                )*
            }
        )?
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                $(#[serde($($serde)*)])*
                pub $field: $ty,
            )*
            $($(
                $(#[doc = $ndoc])*
                pub $nfield: $nty,
            )*)?
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                    $($($nfield: <$nty>::default(),)*)?
                }
            }
        }

        impl $crate::config::setting::Section for $name {
            const PATH: &'static str = $path;
            const SETTINGS: &'static [$crate::config::setting::Setting] = &[$(
                $crate::config::setting::Setting {
                    path: concat!($path, ".", stringify!($field)),
                    doc: concat!($($doc, "\n",)*),
                    env_aliases: &[$($($alias),*)?],
                    flag: section!(@flag $($flag)?),
                    syntax: <$ty as $crate::config::values::SettingValue>::SYNTAX,
                },
            )*];

            fn extract(
                layers: &$crate::config::layers::Layers,
                problems: &mut Vec<$crate::config::Problem>,
            ) -> Self {
                let defaults = Self::default();
                Self {
                    $($field: layers.pick(
                        concat!($path, ".", stringify!($field)),
                        defaults.$field,
                        problems,
                    ),)*
                    $($($nfield: <$nty as $crate::config::setting::Section>::extract(
                        layers, problems,
                    ),)*)?
                }
            }
        }
    };
    (@flag) => { None };
    (@flag $flag:literal) => { Some($flag) };
}

pub(crate) use section;
