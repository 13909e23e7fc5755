//! The README's configuration reference cannot drift from the code: the block must parse
//! as a valid config, and every field of every config struct must appear in it.

use std::path::Path;

use bulwark_core::Config;
use bulwark_core::config::{
    DriftConfig, FollowConfig, FreezeConfig, HealthConfig, MetricsConfig, NotifyConfig, PingConfig, ProtectConfig,
    ReleaseConfig, ServerConfig, ServiceConfig, WatchConfig,
};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names serde derives for `T` (what `#[derive(Deserialize)]` passes to
/// `deserialize_struct`), captured by a deserializer that only records them.
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Capture(std::cell::Cell<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &Capture {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let capture = Capture(std::cell::Cell::new(&[]));
    let _ = T::deserialize(&capture);
    capture.0.get()
}

fn reference_block() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let section = readme.split("### Configuration reference").nth(1).expect("README has a configuration reference");
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = section[start..].find("```").unwrap() + start;
    section[start..end].to_owned()
}

#[test]
fn the_reference_block_is_a_valid_config() {
    Config::parse(&reference_block(), Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_config_field_is_in_the_reference() {
    let block = reference_block();
    let value: toml::Value = toml::from_str(&block).unwrap();
    let at = |path: &[&str]| -> toml::Value {
        let mut v = value.clone();
        for key in path {
            v = match v {
                toml::Value::Array(items) => items[0].get(*key).cloned(),
                other => other.get(*key).cloned(),
            }
            .unwrap_or_else(|| panic!("the reference lacks `{}`", path.join(".")));
        }
        if let toml::Value::Array(items) = v { items[0].clone() } else { v }
    };
    let sections: Vec<(&[&str], &[&str])> = vec![
        (&[], fields::<Config>()),
        (&["protect"], fields::<ProtectConfig>()),
        (&["server"], fields::<ServerConfig>()),
        (&["drift"], fields::<DriftConfig>()),
        (&["service"], fields::<ServiceConfig>()),
        (&["service", "health"], fields::<HealthConfig>()),
        (&["service", "watch"], fields::<WatchConfig>()),
        (&["service", "release"], fields::<ReleaseConfig>()),
        (&["service", "follow"], fields::<FollowConfig>()),
        (&["notify"], fields::<NotifyConfig>()),
        (&["freeze"], fields::<FreezeConfig>()),
        (&["ping"], fields::<PingConfig>()),
        (&["metrics"], fields::<MetricsConfig>()),
    ];
    let mut missing = Vec::new();
    for (path, names) in sections {
        assert!(!names.is_empty(), "no fields captured for {path:?}");
        let table = at(path);
        for name in names {
            // A key documented as an alternative in a comment (`url = "https://…"`) counts.
            // In an array of tables (`[[notify]]`), any entry may show the key.
            let in_any = match value.get(path.first().copied().unwrap_or_default()) {
                Some(toml::Value::Array(items)) if path.len() == 1 => items.iter().any(|t| t.get(*name).is_some()),
                _ => false,
            };
            if table.get(*name).is_none() && !in_any && !block.contains(&format!("`{name} = ")) {
                let mut key = path.join(".");
                if !key.is_empty() {
                    key.push('.');
                }
                missing.push(format!("{key}{name}"));
            }
        }
    }
    assert!(missing.is_empty(), "README's configuration reference lacks: {missing:?}");
}

/// The example `/etc/bulwark/bulwark.toml` the Debian package installs (install/bulwark.toml)
/// changes nothing as shipped (everything commented out), and is the reference: uncommented,
/// it is exactly the README's block.
#[test]
fn the_packaged_example_config_is_the_reference_commented_out() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../install/bulwark.toml");
    let example = std::fs::read_to_string(&path).unwrap();
    let shipped = Config::parse(&example, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shipped.protect.branches, ["main", "master"]);
    assert!(shipped.services.is_empty() && shipped.notify.is_empty() && shipped.protect.role.is_none());
    let mut uncommented = String::new();
    for line in example.lines().filter(|l| !l.starts_with("##") && !l.is_empty()) {
        uncommented.push_str(line.strip_prefix("# ").unwrap_or(line.strip_prefix('#').unwrap_or(line)));
        uncommented.push('\n');
    }
    assert_eq!(uncommented, reference_block(), "install/bulwark.toml is not the README's reference, commented out");
}
