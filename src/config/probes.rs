//! `[probes]`: one table per probe of the [`Catalog`] the config was loaded with. Each table has the
//! keys every probe has ([`ProbeConfig`]) and the probe's own, which its declaration
//! ([`super::spec::ProbeSpec`]) defines, defaults and checks.

use super::catalog::Catalog;
use super::schedule::{ProbeConfig, ProbeTable};
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// `[probes]`: one table per probe, in the catalog's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbesConfig {
    tables: BTreeMap<String, ProbeTable>,
    catalog: Catalog,
}

impl ProbesConfig {
    /// Every probe of the catalog with its schedule, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, ProbeConfig)> + '_ {
        self.catalog.specs().map(|spec| {
            let schedule = self
                .tables
                .get(spec.name)
                .map_or_else(|| spec.schedule.clone(), |t| t.schedule.clone());
            (spec.name, schedule)
        })
    }

    /// The schedule of `name`, if the catalog has it.
    pub fn schedule(&self, name: &str) -> Option<ProbeConfig> {
        self.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }

    /// The schedule of `name` to change (a `check` compresses intervals, tests switch probes).
    pub fn schedule_mut(&mut self, name: &str) -> Option<&mut ProbeConfig> {
        let spec = self.catalog.get(name)?;
        let table = self
            .tables
            .entry(name.to_string())
            .or_insert_with(|| ProbeTable {
                schedule: spec.schedule.clone(),
                own: (spec.options)(),
            });
        Some(&mut table.schedule)
    }

    /// The own keys of `name` as its options type `T` (the loader checked that they deserialize;
    /// `T::default()` when they do not, e.g. for a config built in code).
    pub fn options<T: DeserializeOwned + Default>(&self, name: &str) -> T {
        self.tables
            .get(name)
            .map(ProbeTable::options)
            .unwrap_or_default()
    }

    /// The table of `name`, if the config has it.
    pub fn table(&self, name: &str) -> Option<&ProbeTable> {
        self.tables.get(name)
    }

    /// The probes this config was loaded with.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(super) fn set_catalog(&mut self, catalog: Catalog) {
        self.catalog = catalog;
    }
}

impl Serialize for ProbesConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.tables.len()))?;
        let in_catalog: Vec<&str> = self.catalog.specs().map(|p| p.name).collect();
        for name in &in_catalog {
            if let Some(t) = self.tables.get(*name) {
                map.serialize_entry(name, t)?;
            }
        }
        for (name, t) in &self.tables {
            if !in_catalog.contains(&name.as_str()) {
                map.serialize_entry(name, t)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ProbesConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            tables: BTreeMap::deserialize(d)?,
            catalog: Catalog::default(),
        })
    }
}
