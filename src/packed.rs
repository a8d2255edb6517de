//! Objects kept in a cache as their JSON encoding rather than as Rust values.
//!
//! A decoded Secret costs several times its encoding: every label, annotation and data map is a
//! B-tree whose first node holds room for eleven entries, every string its own allocation. At
//! 10,000 tokens the operator's Secret cache held about 3.4 KB per Secret decoded (34 MB, the
//! largest part of the heap) against about 0.7 KB as JSON. The cache is read once per reconcile,
//! and decoding 0.7 KB of JSON costs microseconds next to the API calls a reconcile makes.
//!
//! A packed object keeps its name, namespace and resourceVersion beside the JSON, which is all
//! a reflector store needs to key it ([`Lookup`]). It has no `Debug` of its contents: a packed
//! Secret holds token values.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use kube::Resource;
use kube::runtime::reflector::{Lookup, ObjectRef};
use kube::runtime::watcher::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Packed<K> {
    name: Box<str>,
    namespace: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    json: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Resource + Serialize + DeserializeOwned> Packed<K> {
    pub fn pack(obj: &K) -> Self {
        let meta = obj.meta();
        Self {
            name: meta.name.as_deref().unwrap_or_default().into(),
            namespace: meta.namespace.as_deref().map(Into::into),
            resource_version: meta.resource_version.as_deref().map(Into::into),
            // Kubernetes objects always encode (their maps have string keys). Were one not to,
            // it would be kept empty, fail to unpack, and be read from the API server instead.
            json: serde_json::to_vec(obj).unwrap_or_default().into(),
            kind: PhantomData,
        }
    }

    /// The object's namespace and name, as a key of the unpacked kind.
    pub fn key(&self) -> ObjectRef<K>
    where
        K::DynamicType: Default,
    {
        let key = ObjectRef::new(&self.name);
        match &self.namespace {
            Some(ns) => key.within(ns),
            None => key,
        }
    }

    /// The object as packed; None if it does not decode (then read it from the API server).
    pub fn unpack(&self) -> Option<K> {
        serde_json::from_slice(&self.json).ok()
    }
}

/// A watch event with its objects packed.
pub fn event<K: Resource + Serialize + DeserializeOwned>(event: Event<K>) -> Event<Packed<K>> {
    match event {
        Event::Apply(obj) => Event::Apply(Packed::pack(&obj)),
        Event::Delete(obj) => Event::Delete(Packed::pack(&obj)),
        Event::Init => Event::Init,
        Event::InitApply(obj) => Event::InitApply(Packed::pack(&obj)),
        Event::InitDone => Event::InitDone,
    }
}

impl<K: Resource> Lookup for Packed<K> {
    type DynamicType = K::DynamicType;

    fn kind(dyntype: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dyntype)
    }

    fn group(dyntype: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dyntype)
    }

    fn version(dyntype: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dyntype)
    }

    fn plural(dyntype: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dyntype)
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        self.namespace.as_deref().map(Cow::Borrowed)
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        self.resource_version.as_deref().map(Cow::Borrowed)
    }

    /// Not kept: nothing looks a packed object up by UID (the store keys by namespace and name).
    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            resource_version: self.resource_version.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

/// Names the object, never shows its contents.
impl<K> fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("resource_version", &self.resource_version)
            .field("bytes", &self.json.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
