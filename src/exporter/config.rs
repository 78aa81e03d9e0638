//! vmware_exporter's configuration: its YAML file (a `default` section and
//! named ones) or, without a file, its `VSPHERE_*` environment variables
//! (`VSPHERE_<SECTION>_*` for named sections), read as vmware_exporter 0.18.4
//! reads them, plus two keys of our own for verifying vCenter's
//! certificate: `ca_file` (`VSPHERE_CA_FILE`) and `fingerprint`
//! (`VSPHERE_FINGERPRINT`).

use crate::error::Error;
use crate::vsphere::Verification;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// vmware_exporter's default `specs_size`.
pub const DEFAULT_SPECS_SIZE: u64 = 5000;

/// Which groups of metrics a section collects (`collect_only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectOnly {
    /// `vmware_vm_*` of the VMs, their performance counters included.
    pub vms: bool,
    /// The guests' disks and tools (`vmware_vm_guest_*`).
    pub vmguests: bool,
    /// `vmware_datastore_*`.
    pub datastores: bool,
    /// `vmware_host_*`, their performance counters included.
    pub hosts: bool,
    /// `vmware_vm_snapshot*`.
    pub snapshots: bool,
}

impl Default for CollectOnly {
    fn default() -> CollectOnly {
        CollectOnly {
            vms: true,
            vmguests: true,
            datastores: true,
            hosts: true,
            snapshots: true,
        }
    }
}

/// One section: a vCenter (or one given per scrape) and what to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section's name (`default`, or a named section in lower case).
    pub name: String,
    /// The vSphere host; `None` takes it from the scrape's `target` or
    /// `vsphere_host` parameter.
    pub vsphere_host: Option<String>,
    /// The user to log in as.
    pub vsphere_user: Option<String>,
    /// Its password.
    pub vsphere_password: Option<String>,
    /// No certificate check at all.
    pub ignore_ssl: bool,
    /// Verify vCenter against these CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Verify vCenter by its certificate's SHA-256 or SHA-1 fingerprint.
    pub fingerprint: Option<String>,
    /// Accepted for compatibility; performance queries are chunked by 256
    /// entities whatever it says.
    pub specs_size: u64,
    /// Not supported: accepted and warned about.
    pub fetch_custom_attributes: bool,
    /// Not supported: accepted and warned about.
    pub fetch_tags: bool,
    /// Not supported: accepted and warned about.
    pub fetch_alarms: bool,
    /// What to collect.
    pub collect_only: CollectOnly,
}

impl Section {
    fn new(name: &str) -> Section {
        Section {
            name: name.to_owned(),
            vsphere_host: None,
            vsphere_user: None,
            vsphere_password: None,
            ignore_ssl: false,
            ca_file: None,
            fingerprint: None,
            specs_size: DEFAULT_SPECS_SIZE,
            fetch_custom_attributes: false,
            fetch_tags: false,
            fetch_alarms: false,
            collect_only: CollectOnly::default(),
        }
    }

    /// How vCenter's certificate is checked: none with `ignore_ssl`, else
    /// the CA file or fingerprint when given, else the system's roots.
    pub fn verification(&self) -> Verification {
        if self.ignore_ssl {
            Verification::Insecure
        } else if let Some(file) = &self.ca_file {
            Verification::CaFile(file.clone())
        } else if let Some(fingerprint) = &self.fingerprint {
            Verification::Fingerprint(fingerprint.clone())
        } else {
            Verification::SystemRoots
        }
    }

    /// The options vmware_exporter accepts that this exporter does not
    /// implement, set in this section.
    pub fn unsupported(&self) -> Vec<&'static str> {
        let mut found = Vec::new();
        for (set, name) in [
            (self.fetch_custom_attributes, "fetch_custom_attributes"),
            (self.fetch_tags, "fetch_tags"),
            (self.fetch_alarms, "fetch_alarms"),
        ] {
            if set {
                found.push(name);
            }
        }
        found
    }

    fn check(&self) -> Result<(), Error> {
        if self.ca_file.is_some() && self.fingerprint.is_some() {
            return Err(invalid(format!(
                "section {}: ca_file and fingerprint are both set; give one",
                self.name
            )));
        }
        Ok(())
    }
}

/// Every section, `default` always among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    sections: BTreeMap<String, Section>,
}

fn invalid(message: String) -> Error {
    Error::InvalidArgument(message)
}

impl Config {
    /// The section called `name`, or `default` when there is none (as
    /// vmware_exporter does with an unknown `?section=`).
    pub fn section(&self, name: &str) -> &Section {
        self.sections
            .get(name)
            .or_else(|| self.sections.get("default"))
            .expect("a configuration always has a default section")
    }

    /// Every section, by name.
    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.values()
    }

    /// Reads the YAML file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            invalid(format!(
                "Error while reading configuration file {}: {error}",
                path.display()
            ))
        })?;
        Config::from_yaml(&text).map_err(|error| {
            invalid(format!(
                "Error while reading configuration file {}: {error}",
                path.display()
            ))
        })
    }

    /// Reads a configuration from YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, Error> {
        let documents =
            YamlLoader::load_from_str(text).map_err(|error| invalid(error.to_string()))?;
        let document = documents.into_iter().next().unwrap_or(Yaml::Null);
        let Yaml::Hash(top) = document else {
            return Err(invalid(
                "the file is not a mapping of sections (you must have a default section)".into(),
            ));
        };
        let mut sections = BTreeMap::new();
        for (name, body) in top {
            let name = scalar(&name).ok_or_else(|| invalid("a section name is not text".into()))?;
            let mut section = Section::new(&name);
            match body {
                Yaml::Hash(keys) => {
                    for (key, value) in keys {
                        let key = scalar(&key).unwrap_or_default();
                        set_from_yaml(&mut section, &key, &value)?;
                    }
                }
                Yaml::Null => {}
                _ => return Err(invalid(format!("section {name} is not a mapping"))),
            }
            section.check()?;
            sections.insert(name, section);
        }
        if !sections.contains_key("default") {
            return Err(invalid(
                "Error, you must have a default section in config file".into(),
            ));
        }
        Ok(Config { sections })
    }

    /// Reads the configuration from environment variables as given by
    /// `vars` (`std::env::vars()` in the program).
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, Error> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let mut sections = BTreeMap::new();
        let default = section_from_env(&vars, "default", "VSPHERE_")?;
        sections.insert("default".to_owned(), default);
        for key in vars.keys() {
            if key == "VSPHERE_USER" || !key.starts_with("VSPHERE_") || !key.ends_with("_USER") {
                continue;
            }
            // `VSPHERE_<SECTION>_USER`: the section is what lies between the
            // first and the last underscore.
            let inner = &key["VSPHERE_".len()..key.len() - "_USER".len()];
            if inner.is_empty() {
                continue;
            }
            let section =
                section_from_env(&vars, &inner.to_lowercase(), &format!("VSPHERE_{inner}_"))?;
            sections.insert(inner.to_lowercase(), section);
        }
        Ok(Config { sections })
    }
}

/// A YAML scalar as text (what Python's `str()` of it would show for
/// strings and numbers).
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(if *flag { "True" } else { "False" }.to_owned()),
        _ => None,
    }
}

/// A YAML boolean: YAML 1.1's spellings too (`yes`, `on`, ...), which the
/// Python YAML reader vmware_exporter uses takes as booleans.
fn boolean(section: &str, key: &str, value: &Yaml) -> Result<bool, Error> {
    let refuse = || {
        invalid(format!(
            "section {section}: {key} must be true or false, not {value:?}"
        ))
    };
    match value {
        Yaml::Boolean(flag) => Ok(*flag),
        // An empty value: Python's None, which vmware_exporter takes as false.
        Yaml::Null => Ok(false),
        Yaml::Integer(number) => Ok(*number != 0),
        Yaml::String(text) => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Ok(true),
            "false" | "no" | "off" | "n" => Ok(false),
            _ => Err(refuse()),
        },
        _ => Err(refuse()),
    }
}

fn text_value(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Null => None,
        other => scalar(other),
    }
}

/// The host: vmware_exporter takes an empty one, or `None` written out,
/// as none (the scrape's `target` then names it).
fn host_value(value: &Yaml) -> Option<String> {
    text_value(value).filter(|host| !host.is_empty() && host != "None")
}

fn specs_size(section: &str, text: &str) -> Result<u64, Error> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|size| *size > 0)
        .ok_or_else(|| {
            invalid(format!(
                "section {section}: specs_size must be a positive whole number, not {text:?}"
            ))
        })
}

fn set_from_yaml(section: &mut Section, key: &str, value: &Yaml) -> Result<(), Error> {
    let name = section.name.clone();
    match key {
        "vsphere_host" => section.vsphere_host = host_value(value),
        "vsphere_user" => section.vsphere_user = text_value(value),
        "vsphere_password" => section.vsphere_password = text_value(value),
        "ca_file" => section.ca_file = text_value(value).map(PathBuf::from),
        "fingerprint" => section.fingerprint = text_value(value),
        "ignore_ssl" => section.ignore_ssl = boolean(&name, key, value)?,
        "fetch_custom_attributes" => {
            section.fetch_custom_attributes = boolean(&name, key, value)?;
        }
        "fetch_tags" => section.fetch_tags = boolean(&name, key, value)?,
        "fetch_alarms" => section.fetch_alarms = boolean(&name, key, value)?,
        "specs_size" => {
            if let Some(text) = text_value(value) {
                section.specs_size = specs_size(&name, &text)?;
            }
        }
        "collect_only" => match value {
            Yaml::Hash(groups) => {
                for (group, flag) in groups {
                    let group = scalar(group).unwrap_or_default();
                    let flag = boolean(&name, &format!("collect_only.{group}"), flag)?;
                    let collect = &mut section.collect_only;
                    match group.as_str() {
                        "vms" => collect.vms = flag,
                        "vmguests" => collect.vmguests = flag,
                        "datastores" => collect.datastores = flag,
                        "hosts" => collect.hosts = flag,
                        "snapshots" => collect.snapshots = flag,
                        other => {
                            return Err(invalid(format!(
                                "section {name}: collect_only has no group {other:?} \
                                 (vms, vmguests, datastores, hosts, snapshots)"
                            )))
                        }
                    }
                }
            }
            Yaml::Null => {}
            _ => {
                return Err(invalid(format!(
                    "section {name}: collect_only must be a mapping of groups to true or false"
                )))
            }
        },
        other => log::warn!("section {name}: unknown key {other:?} ignored"),
    }
    Ok(())
}

fn section_from_env(
    vars: &BTreeMap<String, String>,
    name: &str,
    prefix: &str,
) -> Result<Section, Error> {
    let get = |key: &str| vars.get(&format!("{prefix}{key}")).cloned();
    // vmware_exporter's reading of a boolean variable: true when it reads
    // `true` in any case, false otherwise.
    let flag = |key: &str, default: bool| {
        get(key)
            .map(|value| value.to_lowercase() == "true")
            .unwrap_or(default)
    };
    let mut section = Section::new(name);
    section.vsphere_host = get("HOST").filter(|host| !host.is_empty() && host != "None");
    section.vsphere_user = get("USER");
    section.vsphere_password = get("PASSWORD");
    section.ignore_ssl = flag("IGNORE_SSL", false);
    section.ca_file = get("CA_FILE")
        .filter(|file| !file.is_empty())
        .map(PathBuf::from);
    section.fingerprint = get("FINGERPRINT").filter(|text| !text.is_empty());
    if let Some(size) = get("SPECS_SIZE") {
        section.specs_size = specs_size(name, &size)?;
    }
    section.fetch_custom_attributes = flag("FETCH_CUSTOM_ATTRIBUTES", false);
    section.fetch_tags = flag("FETCH_TAGS", false);
    section.fetch_alarms = flag("FETCH_ALARMS", false);
    section.collect_only = CollectOnly {
        vms: flag("COLLECT_VMS", true),
        vmguests: flag("COLLECT_VMGUESTS", true),
        datastores: flag("COLLECT_DATASTORES", true),
        hosts: flag("COLLECT_HOSTS", true),
        snapshots: flag("COLLECT_SNAPSHOTS", true),
    };
    section.check()?;
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn the_yaml_file_is_read_as_vmware_exporter_reads_it() {
        let config = Config::from_yaml(
            "default:\n  vsphere_host: \"vc01.example.org\"\n  vsphere_user: 'user'\n  \
             vsphere_password: \"secret\"\n  ignore_ssl: False\n  specs_size: 2000\n  \
             fetch_custom_attributes: False\n  collect_only:\n    vms: True\n    vmguests: yes\n    \
             datastores: off\n    hosts: True\n    snapshots: True\n\
             esx:\n  vsphere_host: None\n  vsphere_user: root\n  vsphere_password: 1234\n  \
             ignore_ssl: True\n",
        )
        .unwrap();
        let default = config.section("default");
        assert_eq!(default.vsphere_host.as_deref(), Some("vc01.example.org"));
        assert_eq!(default.vsphere_user.as_deref(), Some("user"));
        assert_eq!(default.specs_size, 2000);
        assert_eq!(default.verification(), Verification::SystemRoots);
        assert!(default.collect_only.vmguests);
        assert!(!default.collect_only.datastores);
        let esx = config.section("esx");
        assert_eq!(esx.vsphere_host, None);
        assert_eq!(esx.vsphere_password.as_deref(), Some("1234"));
        assert_eq!(esx.verification(), Verification::Insecure);
        assert_eq!(esx.collect_only, CollectOnly::default());
        // Empty values: no host, false flags; `None` is a password like any.
        let empty = Config::from_yaml(
            "default:\n  vsphere_host: ''\n  vsphere_password: None\n  ignore_ssl:\n  fetch_tags: ~\n",
        )
        .unwrap();
        let empty = empty.section("default");
        assert_eq!(empty.vsphere_host, None);
        assert_eq!(empty.vsphere_password.as_deref(), Some("None"));
        assert!(!empty.ignore_ssl && !empty.fetch_tags);
        // An unknown section is the default one.
        assert_eq!(config.section("nope").name, "default");
    }

    #[test]
    fn bad_files_get_clear_errors() {
        for (text, expected) in [
            (
                "esx:\n  vsphere_user: root\n",
                "you must have a default section",
            ),
            ("- a\n- b\n", "not a mapping of sections"),
            ("default: [1, 2]\n", "section default is not a mapping"),
            (
                "default:\n  ignore_ssl: maybe\n",
                "ignore_ssl must be true or false",
            ),
            (
                "default:\n  specs_size: lots\n",
                "specs_size must be a positive",
            ),
            (
                "default:\n  collect_only:\n    vm: true\n",
                "collect_only has no group \"vm\"",
            ),
            (
                "default:\n  ca_file: /a\n  fingerprint: ab\n",
                "ca_file and fingerprint",
            ),
            ("default: {\n", "line 2 column 1"),
        ] {
            let error = Config::from_yaml(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let error = Config::from_file(Path::new("/nonexistent/config.yml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/config.yml"), "{error}");
    }

    #[test]
    fn environment_variables_make_sections() {
        let config = Config::from_env(env(&[
            ("VSPHERE_HOST", "vc01"),
            ("VSPHERE_USER", "admin"),
            ("VSPHERE_PASSWORD", "pw"),
            ("VSPHERE_IGNORE_SSL", "TRUE"),
            ("VSPHERE_COLLECT_SNAPSHOTS", "False"),
            ("VSPHERE_LAB_DC_USER", "root"),
            ("VSPHERE_LAB_DC_HOST", "esx1:8443"),
            ("VSPHERE_LAB_DC_CA_FILE", "/etc/ca.pem"),
            ("VSPHERE_LAB_DC_COLLECT_HOSTS", "no"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        let default = config.section("default");
        assert_eq!(default.vsphere_host.as_deref(), Some("vc01"));
        assert!(default.ignore_ssl);
        assert!(!default.collect_only.snapshots);
        let lab = config.section("lab_dc");
        assert_eq!(lab.vsphere_host.as_deref(), Some("esx1:8443"));
        assert_eq!(
            lab.verification(),
            Verification::CaFile(PathBuf::from("/etc/ca.pem"))
        );
        // Only `true` (any case) is true, as in vmware_exporter.
        assert!(!lab.collect_only.hosts);
        assert_eq!(config.sections().count(), 2);
        let blank = Config::from_env(env(&[("VSPHERE_HOST", "")])).unwrap();
        assert_eq!(blank.section("default").vsphere_host, None);
        // Without any variable: a default section with no host.
        let empty = Config::from_env(env(&[])).unwrap();
        assert_eq!(empty.section("x").vsphere_host, None);
        let bad = Config::from_env(env(&[("VSPHERE_SPECS_SIZE", "-1")])).unwrap_err();
        assert!(bad.to_string().contains("specs_size"), "{bad}");
    }
}
