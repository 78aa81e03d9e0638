//! The objects in memory: per managed type, the objects of its container
//! view in the view's order, the mirrored properties of each as the server
//! sent them (raw `<val>` elements, so that an answer from memory is
//! converted by the same code as one from vCenter), and the index from key
//! property (a name, a datastore's URL) to object.

use crate::vsphere::property::ObjectContent;
use crate::vsphere::soap::MoRef;
use crate::vsphere::updates::{self, Applied, ObjectChange, ObjectUpdate, PropertyChange};
use crate::vsphere::xml::Node;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One object and its mirrored properties.
#[derive(Debug)]
struct Object {
    obj: MoRef,
    /// Set properties only: an unset one is absent, as in an answer. The
    /// path is shared by every object (see [`KindStore::intern`]).
    props: Vec<(Arc<str>, Node)>,
}

/// Everything mirrored of one managed type.
#[derive(Debug, Default)]
pub(super) struct KindStore {
    /// The properties whose current values are all in memory, with when
    /// a request last read each (milliseconds after the mirror's start):
    /// written by readers under the shared lock, collected by the follower.
    ready: HashMap<String, AtomicU64>,
    /// The view's members, in its order (ids).
    order: Vec<String>,
    objects: HashMap<String, Object>,
    /// Key property value to the first object in view order with it.
    index: HashMap<String, MoRef>,
    /// The key property whose index this is, and whether it is current.
    index_key: Option<&'static str>,
    index_stale: bool,
    /// One copy of each path's text for all objects.
    paths: HashMap<String, Arc<str>>,
}

impl KindStore {
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// How many property values are held.
    pub fn values(&self) -> usize {
        self.objects.values().map(|object| object.props.len()).sum()
    }

    /// Whether every value of `path` is in memory.
    pub fn is_ready(&self, path: &str) -> bool {
        self.ready.contains_key(path)
    }

    /// `path`'s values are all in memory from now on (read at `now_ms`).
    pub fn mark_ready(&mut self, path: &str, now_ms: u64) {
        self.ready
            .entry(path.to_owned())
            .or_insert_with(|| AtomicU64::new(now_ms));
    }

    /// The ready paths.
    pub fn ready_paths(&self) -> Vec<String> {
        self.ready.keys().cloned().collect()
    }

    /// Notes that `paths` were read at `now_ms`; coarse (a tenth of a
    /// second), so that most reads write nothing.
    pub fn touch(&self, paths: &[&str], now_ms: u64) {
        for path in paths {
            if let Some(at) = self.ready.get(*path) {
                if now_ms.saturating_sub(at.load(Ordering::Relaxed)) > 100 {
                    at.fetch_max(now_ms, Ordering::Relaxed);
                }
            }
        }
    }

    /// When each ready path was last read.
    pub fn touched(&self) -> impl Iterator<Item = (&String, u64)> {
        self.ready
            .iter()
            .map(|(path, at)| (path, at.load(Ordering::Relaxed)))
    }

    /// Forgets property `path` of every object.
    pub fn drop_path(&mut self, path: &str) {
        self.ready.remove(path);
        self.paths.remove(path);
        for object in self.objects.values_mut() {
            object.props.retain(|(name, _)| &**name != path);
        }
    }

    /// The shared text of `path`.
    fn intern(&mut self, path: &str) -> Arc<str> {
        if let Some(shared) = self.paths.get(path) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(path);
        self.paths.insert(path.to_owned(), shared.clone());
        shared
    }

    /// Applies the changes to the view itself (its `view` property).
    fn apply_view(&mut self, update: &ObjectUpdate) -> Applied {
        let mut outcome = Applied::Done;
        for change in &update.changes {
            let mut value = Some(self.view_node());
            if updates::apply_change("view", &mut value, change) == Applied::Unresolved {
                outcome = Applied::Unresolved;
                continue;
            }
            self.set_order(value.as_ref());
        }
        outcome
    }

    fn view_node(&self) -> Node {
        Node {
            name: "val".into(),
            children: self
                .order
                .iter()
                .filter_map(|id| self.objects.get(id))
                .map(|object| {
                    let mut reference = Node {
                        name: "ManagedObjectReference".into(),
                        type_attr: Some(object.obj.kind.clone()),
                        text: object.obj.id.clone(),
                        ..Node::default()
                    };
                    reference.name.shrink_to_fit();
                    reference
                })
                .collect(),
            ..Node::default()
        }
    }

    /// The view's members are those of `view` (an array of references);
    /// objects that left it are forgotten, new ones are known by reference
    /// until their properties come.
    fn set_order(&mut self, view: Option<&Node>) {
        let members: Vec<MoRef> = view
            .map(|node| node.children.iter().filter_map(MoRef::from_node).collect())
            .unwrap_or_default();
        let mut seen = HashSet::with_capacity(members.len());
        self.order = Vec::with_capacity(members.len());
        for member in members {
            if seen.insert(member.id.clone()) {
                self.order.push(member.id.clone());
                self.objects.entry(member.id.clone()).or_insert(Object {
                    obj: member,
                    props: Vec::new(),
                });
            }
        }
        self.objects.retain(|id, _| seen.contains(id));
        self.index_stale = true;
    }

    /// Applies one object's update; `paths` are the mirrored properties
    /// (an enter sets all of them).
    fn apply_object(&mut self, update: &ObjectUpdate, paths: &[String]) -> Applied {
        match update.kind {
            ObjectChange::Leave => {
                if self.objects.remove(&update.obj.id).is_some() {
                    self.order.retain(|id| id != &update.obj.id);
                    self.index_stale = true;
                }
                Applied::Done
            }
            ObjectChange::Enter | ObjectChange::Modify => {
                let is_new = !self.objects.contains_key(&update.obj.id);
                let interned: Vec<Arc<str>> = update
                    .changes
                    .iter()
                    .filter_map(|change| mirrored_path(paths, &change.name))
                    .map(|path| path.as_str())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|path| self.intern(path))
                    .collect();
                let object = self
                    .objects
                    .entry(update.obj.id.clone())
                    .or_insert_with(|| Object {
                        obj: update.obj.clone(),
                        props: Vec::new(),
                    });
                if is_new {
                    // Known before the view says so: last until it does.
                    self.order.push(update.obj.id.clone());
                }
                if update.kind == ObjectChange::Enter {
                    object.props.clear();
                }
                let mut outcome = Applied::Done;
                let mut interned = interned.into_iter();
                let mut key_changed = false;
                for change in &update.changes {
                    if mirrored_path(paths, &change.name).is_none() {
                        continue;
                    }
                    let Some(path) = interned.next() else {
                        break;
                    };
                    if apply_to(object, &path, change) == Applied::Unresolved {
                        outcome = Applied::Unresolved;
                    }
                    key_changed |= Some(&*path) == self.index_key;
                }
                if key_changed {
                    self.index_stale = true;
                }
                if is_new {
                    self.index_stale = true;
                }
                outcome
            }
        }
    }

    /// The members are the objects of a read of the whole view, in its
    /// order.
    pub fn set_members(&mut self, contents: &[ObjectContent]) {
        let mut seen = HashSet::with_capacity(contents.len());
        self.order = Vec::with_capacity(contents.len());
        for content in contents {
            if seen.insert(content.obj.id.clone()) {
                self.order.push(content.obj.id.clone());
                self.objects
                    .entry(content.obj.id.clone())
                    .or_insert_with(|| Object {
                        obj: content.obj.clone(),
                        props: Vec::new(),
                    });
            }
        }
        self.objects.retain(|id, _| seen.contains(id));
        self.index_stale = true;
    }

    /// Sets `path` of `object` from a read (not an update): `value` is the
    /// property as the server returned it, `None` when it left it out.
    pub fn set_read(&mut self, content: ObjectContent, paths: &[&str]) {
        let interned: Vec<(Arc<str>, Node)> = content
            .props
            .into_iter()
            .filter(|(name, _)| paths.contains(&name.as_str()))
            .map(|(name, mut value)| {
                value.name = String::new();
                (self.intern(&name), value)
            })
            .collect();
        let object = self
            .objects
            .entry(content.obj.id.clone())
            .or_insert_with(|| Object {
                obj: content.obj.clone(),
                props: Vec::new(),
            });
        object.props.retain(|(name, _)| !paths.contains(&&**name));
        object.props.extend(interned);
        self.index_stale = true;
    }

    /// The objects in view order with `paths` (each once, in the order
    /// asked), or `None` when one of them is not fully known.
    pub fn all(&self, paths: &[&str]) -> Option<Vec<ObjectContent>> {
        self.order
            .iter()
            .map(|id| self.objects.get(id).map(|object| content(object, paths)))
            .collect()
    }

    /// The objects `references` (each once, in their order) with `paths`;
    /// `None` when one is not in memory.
    pub fn some(&self, references: &[MoRef], paths: &[&str]) -> Option<Vec<ObjectContent>> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(references.len());
        for reference in references {
            if !seen.insert(&reference.id) {
                continue;
            }
            let object = self.objects.get(&reference.id)?;
            if object.obj.kind != reference.kind {
                return None;
            }
            out.push(content(object, paths));
        }
        Some(out)
    }

    /// The first object (in view order) whose `key` property is `value`.
    pub fn find(&self, key: &'static str, value: &str) -> Option<Option<MoRef>> {
        if self.index_key != Some(key) || self.index_stale {
            return None;
        }
        Some(self.index.get(value).cloned())
    }

    /// Makes the index of `key` current, when it is not.
    pub fn reindex(&mut self, key: &'static str) {
        if self.index_key == Some(key) && !self.index_stale {
            return;
        }
        let mut index = HashMap::with_capacity(self.order.len());
        for id in &self.order {
            let Some(object) = self.objects.get(id) else {
                continue;
            };
            let value = object
                .props
                .iter()
                .find(|(name, _)| &**name == key)
                .map(|(_, node)| node)
                .filter(|node| node.children.is_empty());
            if let Some(value) = value {
                index
                    .entry(value.text.clone())
                    .or_insert_with(|| object.obj.clone());
            }
        }
        self.index = index;
        self.index_key = Some(key);
        self.index_stale = false;
    }

    /// Whether `id` is a member (an object in the view).
    #[cfg(test)]
    fn has(&self, id: &str) -> bool {
        self.objects.contains_key(id)
    }
}

/// The mirrored property a change belongs to: its own path, or one above it.
fn mirrored_path<'a>(paths: &'a [String], change: &str) -> Option<&'a String> {
    paths.iter().find(|path| {
        change == path.as_str()
            || change
                .strip_prefix(path.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

fn apply_to(object: &mut Object, path: &Arc<str>, change: &PropertyChange) -> Applied {
    let at = object.props.iter().position(|(name, _)| name == path);
    let mut value = at.map(|at| object.props.swap_remove(at).1);
    let outcome = updates::apply_change(path, &mut value, change);
    if let Some(mut value) = value {
        // The name of a value element is not part of it.
        value.name = String::new();
        object.props.push((path.clone(), value));
    }
    outcome
}

fn content(object: &Object, paths: &[&str]) -> ObjectContent {
    let mut props = Vec::with_capacity(paths.len());
    for (at, path) in paths.iter().enumerate() {
        if paths[..at].contains(path) {
            continue;
        }
        if let Some((_, node)) = object.props.iter().find(|(name, _)| &**name == *path) {
            props.push(((*path).to_owned(), node.clone()));
        }
    }
    ObjectContent {
        obj: object.obj.clone(),
        props,
    }
}

/// Applies one filter's object updates to `store`, the filter mirroring
/// `paths` of objects of its type; returns the objects whose updates could
/// not be applied (to be read again), and how many updates were applied.
pub(super) fn apply(
    store: &mut KindStore,
    objects: &[ObjectUpdate],
    paths: &[String],
) -> (Vec<MoRef>, u64) {
    let mut unresolved = Vec::new();
    let mut applied = 0;
    for update in objects {
        applied += 1;
        let outcome = if update.obj.kind == "ContainerView" {
            match update.kind {
                ObjectChange::Leave => {
                    store.set_order(None);
                    Applied::Done
                }
                _ => store.apply_view(update),
            }
        } else {
            store.apply_object(update, paths)
        };
        if outcome == Applied::Unresolved && update.obj.kind != "ContainerView" {
            unresolved.push(update.obj.clone());
        }
    }
    (unresolved, applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::updates::ChangeOp;

    fn text(value: &str) -> Node {
        Node {
            name: "val".into(),
            text: value.into(),
            ..Node::default()
        }
    }

    fn vm(id: &str) -> MoRef {
        MoRef::new("VirtualMachine", id)
    }

    fn update(kind: ObjectChange, obj: MoRef, changes: &[(&str, Option<&str>)]) -> ObjectUpdate {
        ObjectUpdate {
            kind,
            obj,
            changes: changes
                .iter()
                .map(|(name, value)| PropertyChange {
                    name: (*name).into(),
                    op: ChangeOp::Assign,
                    val: value.map(text),
                })
                .collect(),
        }
    }

    fn view(ids: &[&str]) -> ObjectUpdate {
        ObjectUpdate {
            kind: ObjectChange::Modify,
            obj: MoRef::new("ContainerView", "session[1]view-1"),
            changes: vec![PropertyChange {
                name: "view".into(),
                op: ChangeOp::Assign,
                val: Some(Node {
                    name: "val".into(),
                    children: ids
                        .iter()
                        .map(|id| Node {
                            name: "ManagedObjectReference".into(),
                            type_attr: Some("VirtualMachine".into()),
                            text: (*id).into(),
                            ..Node::default()
                        })
                        .collect(),
                    ..Node::default()
                }),
            }],
        }
    }

    fn names(store: &KindStore, paths: &[&str]) -> Vec<Vec<(String, String)>> {
        store
            .all(paths)
            .unwrap()
            .into_iter()
            .map(|content| {
                content
                    .props
                    .into_iter()
                    .map(|(name, node)| (name, node.text))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn updates_build_the_objects_in_view_order_and_apply_twice_alike() {
        let paths = vec![String::from("name"), String::from("runtime.powerState")];
        let mut store = KindStore::default();
        let batch = vec![
            update(
                ObjectChange::Enter,
                vm("vm-2"),
                &[
                    ("name", Some("b")),
                    ("runtime.powerState", Some("poweredOn")),
                ],
            ),
            update(
                ObjectChange::Enter,
                vm("vm-1"),
                &[("name", Some("a")), ("runtime.powerState", None)],
            ),
            view(&["vm-1", "vm-2"]),
        ];
        for _ in 0..2 {
            let (unresolved, _) = apply(&mut store, &batch, &paths);
            assert!(unresolved.is_empty());
        }
        let all = &["name", "runtime.powerState", "name"];
        assert_eq!(
            names(&store, all),
            [
                vec![("name".into(), "a".into())],
                vec![
                    ("name".into(), "b".into()),
                    ("runtime.powerState".into(), "poweredOn".into())
                ],
            ]
        );
        store.reindex("name");
        assert_eq!(store.find("name", "b"), Some(Some(vm("vm-2"))));
        // A rename: the index follows, the old name is gone.
        apply(
            &mut store,
            &[update(
                ObjectChange::Modify,
                vm("vm-2"),
                &[("name", Some("c"))],
            )],
            &paths,
        );
        assert_eq!(store.find("name", "c"), None, "stale until reindexed");
        store.reindex("name");
        assert_eq!(store.find("name", "b"), Some(None));
        assert_eq!(store.find("name", "c"), Some(Some(vm("vm-2"))));
        // Leave, and a view without the object: gone either way.
        apply(
            &mut store,
            &[update(ObjectChange::Leave, vm("vm-1"), &[])],
            &paths,
        );
        assert!(!store.has("vm-1"));
        apply(&mut store, &[view(&[])], &paths);
        assert!(!store.has("vm-2"));
        assert_eq!(store.all(&["name"]).unwrap().len(), 0);
    }

    #[test]
    fn only_known_objects_are_answered() {
        let paths = vec![String::from("name")];
        let mut store = KindStore::default();
        apply(
            &mut store,
            &[update(
                ObjectChange::Enter,
                vm("vm-1"),
                &[("name", Some("a"))],
            )],
            &paths,
        );
        assert!(
            store
                .some(&[vm("vm-1"), vm("vm-1")], &["name"])
                .unwrap()
                .len()
                == 1
        );
        assert!(store.some(&[vm("vm-9")], &["name"]).is_none());
        assert!(store
            .some(&[MoRef::new("HostSystem", "vm-1")], &["name"])
            .is_none());
        assert_eq!(store.values(), 1);
        store.drop_path("name");
        assert_eq!(store.values(), 0);
    }
}
