//! `docker ps`: the containers a listing selects (Docker's filters, `--last`), each with what
//! its row shows beyond the container's record: published ports and, when asked, sizes.

use crate::{ContainerInfo, Engine, Error, Result, State};
use std::collections::BTreeMap;

/// The filter keys `ps` knows.
pub const FILTER_KEYS: [&str; 7] = [
    "status", "name", "id", "ancestor", "exited", "label", "health",
];

/// `ps --filter`s, as Docker combines them: the values of one key are alternatives
/// (`status=running` or `status=exited`), except `label`, whose values must all hold; the
/// keys must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilters(BTreeMap<String, Vec<String>>);

impl ContainerFilters {
    /// `key=value` pairs; an unknown key is refused, as Docker does.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<ContainerFilters> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            let k = k.as_ref();
            if !FILTER_KEYS.contains(&k) {
                return Err(Error::Invalid(format!("invalid filter '{k}'")));
            }
            let v_ = v.as_ref();
            if k == "health" && !["starting", "healthy", "unhealthy", "none"].contains(&v_) {
                return Err(Error::Invalid(format!(
                    "Unrecognised filter value for health: {v_}"
                )));
            }
            m.entry(k.to_string())
                .or_default()
                .push(v.as_ref().to_string());
        }
        Ok(ContainerFilters(m))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Whether `c` passes; `labels` gives its labels, asked only when a label filter needs
    /// them.
    pub fn matches(
        &self,
        c: &ContainerInfo,
        labels: impl FnOnce() -> BTreeMap<String, String>,
    ) -> bool {
        let mut labels = Some(labels);
        let mut label_map = None;
        self.0.iter().all(|(k, values)| {
            let one = |v: &String| match k.as_str() {
                "status" => state_word(c.state) == v,
                "name" => c.name.contains(v.trim_start_matches('/')),
                "id" => c.id.starts_with(v.as_str()),
                "ancestor" => {
                    &c.image == v
                        || c.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                }
                // Docker's health filter: `none` for a container without a check.
                "health" => c.health.as_deref().unwrap_or("none") == v,
                "exited" => {
                    c.state == State::Exited
                        && c.exit_code.map(|e| e.to_string()) == Some(v.clone())
                }
                _ => false,
            };
            if k == "label" {
                let map: &BTreeMap<String, String> =
                    label_map.get_or_insert_with(|| labels.take().map(|f| f()).unwrap_or_default());
                values.iter().all(|v| label_matches(map, v))
            } else {
                values.iter().any(one)
            }
        })
    }
}

/// A `label` filter's value against a container's labels: `key` (any value) or `key=value`.
pub fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

/// Docker's word for a state (`State`'s values in `ps --format`, the `status` filter).
pub fn state_word(s: State) -> &'static str {
    match s {
        State::Running => "running",
        State::Exited => "exited",
        State::Created => "created",
    }
}

/// What `ps` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsOptions {
    /// Stopped containers too.
    pub all: bool,
    /// Only the newest this many (all states).
    pub last: Option<usize>,
    /// Docker's filters.
    pub filters: ContainerFilters,
    /// Measure each one's writable layer and image.
    pub size: bool,
}

/// One row of `ps`.
#[derive(Debug, Clone)]
pub struct PsRow {
    /// The container's record.
    pub container: ContainerInfo,
    /// Its published ports (a running container's; none otherwise).
    pub ports: Vec<hako_net::PublishedPort>,
    /// Bytes of its writable layer and of that plus its image, when asked for.
    pub size: Option<(u64, u64)>,
    /// Whether it runs frozen (`docker pause`): Docker's STATUS says "(Paused)", its State
    /// "paused".
    pub paused: bool,
}

impl Engine {
    /// `docker ps`: newest first. Without `all`, only running containers, except that a
    /// `status` filter or `last` choose the states themselves.
    pub fn ps(&self, o: &PsOptions) -> Result<Vec<PsRow>> {
        let limited = o.last.is_some();
        let mut list = self.list(o.all || limited || !o.filters.is_empty())?;
        if !o.filters.is_empty() {
            list.retain(|c| {
                o.filters.matches(c, || {
                    self.stored_config(&c.id)
                        .map(|cfg| cfg.labels.into_iter().collect())
                        .unwrap_or_default()
                })
            });
            if !o.all && !limited && !o.filters.has("status") {
                list.retain(|c| c.state == State::Running);
            }
        }
        if let Some(n) = o.last {
            list.truncate(n);
        }
        let mut sizes = if o.size {
            self.container_sizes(&list)?.into_iter().map(Some).collect()
        } else {
            vec![None; list.len()]
        }
        .into_iter();
        Ok(list
            .into_iter()
            .map(|c| {
                let running = c.state == State::Running;
                PsRow {
                    ports: if running {
                        self.published_ports(&c.id)
                    } else {
                        Vec::new()
                    },
                    size: sizes.next().flatten(),
                    paused: running
                        && self
                            .row(&c.id)
                            .is_ok_and(|r| self.is_paused(&c.id, r.cgroup_parent.as_deref())),
                    container: c,
                }
            })
            .collect())
    }

    /// A container's published ports (`docker port`, `ps`'s PORTS).
    pub fn published_ports(&self, id: &str) -> Vec<hako_net::PublishedPort> {
        crate::netwire::published_ports(self.store.conn(), &self.root, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: State, exit: Option<i32>) -> ContainerInfo {
        ContainerInfo {
            id: "abcdef0123456789".repeat(4),
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:1234".into(),
            command: vec!["sh".into()],
            created: 0,
            state,
            exit_code: exit,
            started_at: None,
            finished_at: None,
            health: None,
        }
    }

    fn f(pairs: &[(&str, &str)]) -> ContainerFilters {
        ContainerFilters::new(pairs).unwrap()
    }

    #[test]
    fn values_of_a_key_are_alternatives_keys_all_hold() {
        let up = container(State::Running, None);
        let none = BTreeMap::new;
        assert!(f(&[("status", "running"), ("status", "exited")]).matches(&up, none));
        assert!(!f(&[("status", "exited")]).matches(&up, none));
        assert!(f(&[("name", "we"), ("id", "abcdef")]).matches(&up, none));
        assert!(!f(&[("name", "we"), ("id", "ff")]).matches(&up, none));
        assert!(f(&[("ancestor", "sha256:12")]).matches(&up, none));
        assert!(f(&[("ancestor", "busybox")]).matches(&up, none));
        let down = container(State::Exited, Some(3));
        assert!(f(&[("exited", "3")]).matches(&down, none));
        assert!(!f(&[("exited", "0")]).matches(&down, none));
        assert!(!f(&[("exited", "3")]).matches(&up, none));
    }

    #[test]
    fn labels_all_hold_and_are_read_only_when_asked() {
        let c = container(State::Running, None);
        let labels = || BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert!(f(&[("label", "a")]).matches(&c, labels));
        assert!(f(&[("label", "a=1")]).matches(&c, labels));
        assert!(!f(&[("label", "a=2")]).matches(&c, labels));
        assert!(!f(&[("label", "a"), ("label", "b")]).matches(&c, labels));
        assert!(f(&[("name", "web")]).matches(&c, || panic!("labels read without a label filter")));
    }

    /// Docker's `health` filter: a check's status, or `none` for a container without one.
    #[test]
    fn health_filter() {
        let mut c = container(State::Running, None);
        let none = BTreeMap::new;
        assert!(f(&[("health", "none")]).matches(&c, none));
        assert!(!f(&[("health", "healthy")]).matches(&c, none));
        c.health = Some("healthy".into());
        assert!(f(&[("health", "healthy"), ("health", "starting")]).matches(&c, none));
        assert!(!f(&[("health", "none")]).matches(&c, none));
        let e = ContainerFilters::new(&[("health", "ok")]).unwrap_err();
        assert_eq!(e.to_string(), "Unrecognised filter value for health: ok");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = ContainerFilters::new(&[("colour", "red")]).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter 'colour'");
        assert_eq!(e.kind(), crate::ErrorKind::Invalid);
    }
}
