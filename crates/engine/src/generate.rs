//! Generators declared on a namespace (`NamespaceSpec.generators`): rhai
//! scripts that compute values of its layers per context of its matrix,
//! run when asked (`confstrata ns generate`, `TemplateService.Generate`,
//! `POST /v1/namespaces/{ns}/generate`). What they compute becomes an
//! ordinary change set: a `put` for a layer that does not exist yet, a
//! `set` for each key whose stored value differs, each layer's first op
//! holding the revision it was read at (a concurrent edit makes the commit
//! a conflict, never a silent overwrite). It is validated, authorized and
//! audited like any other; a dry run shows its diff and findings.
//!
//! Generators read other namespaces through the caller's grants
//! ([`crate::CallerLookup`]), sealed values masked: their output is plain
//! text, so a key that holds a sealed value, or that the secret rule would
//! seal, is refused rather than overwritten or sealed behind their back.

use std::collections::BTreeMap;

use confstrata_core::serde_json::{Map, Value};
use confstrata_core::{
    At, ChangeSet, Document, Error, KeyPath, LayerPath, NamespaceName, NamespaceSpec, Op, Result,
};
use confstrata_templates as templates;
use serde::Serialize;

use crate::Engine;
use crate::security::Caller;
use crate::templates::Outcome;
use confstrata_access::{Action, Resource};

/// What one generator computed for one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedLayer {
    /// The layer.
    pub layer: LayerPath,
    /// The generator's id.
    pub generator: String,
    /// What it computed there.
    pub document: Document,
}

/// What a namespace's generators compute, and the change set that writes
/// it.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratePlan {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The revision the generators read and the change set is based on.
    pub revision: u64,
    /// What each generator computed, layer by layer.
    pub generated: Vec<GeneratedLayer>,
    /// The ops that bring the stored layers to what the generators
    /// compute; empty when they hold it already.
    pub change_set: ChangeSet,
}

impl Engine {
    /// Runs the generators `ns` declares over its matrix, reading as
    /// `caller` at the newest revision: what they compute, and the change
    /// set that writes what differs (see the module docs). Nothing is
    /// written here. The caller must be able to read the layers they
    /// compute and the namespaces they read.
    pub fn generate_plan(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        author: &str,
        message: Option<String>,
    ) -> Result<GeneratePlan> {
        let revision = self.store.revision()?;
        let at = At::Revision(revision);
        let spec = self.namespace(caller, ns, at)?.spec;
        let what = format!("namespace {ns}");
        if spec.generators.is_empty() {
            return Err(Error::invalid(
                what,
                "it declares no generators (declare [[generators]] in its declaration: confstrata ns create -f FILE --replace)",
            ));
        }
        self.check_reads(caller, &spec.generators, at)?;
        let generated = templates::run_generators(
            &what,
            &spec,
            &spec.generators,
            &Map::new(),
            Some(&self.lookup(caller, at)),
            None,
        )?;
        let ops = self.generated_ops(caller, &spec, at, &generated)?;
        Ok(GeneratePlan {
            namespace: ns.clone(),
            revision,
            generated: generated
                .into_iter()
                .map(|(layer, generator, document)| GeneratedLayer {
                    layer,
                    generator,
                    document,
                })
                .collect(),
            change_set: ChangeSet {
                author: crate::templates::author_of(caller, author),
                message: message.unwrap_or_else(|| format!("generated values of {ns}")),
                ops,
            },
        })
    }

    /// [`Engine::generate_plan`], then its change set committed (`commit`)
    /// or dry-run; no outcome when the layers hold what the generators
    /// compute already.
    pub fn generate_apply(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        commit: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(GeneratePlan, Option<Outcome>)> {
        let plan = self.generate_plan(caller, ns, author, message)?;
        if plan.change_set.ops.is_empty() {
            return Ok((plan, None));
        }
        let outcome = self.run_change_set(caller, &plan.change_set, commit)?;
        Ok((plan, Some(outcome)))
    }

    /// The ops that write `generated` into `spec`'s layers as stored at
    /// `at`: a `put` of a new layer, a `set` of each key that differs.
    fn generated_ops(
        &self,
        caller: &Caller,
        spec: &NamespaceSpec,
        at: At,
        generated: &templates::Generated,
    ) -> Result<Vec<Op>> {
        let ns = &spec.name;
        let g = self.gate(caller);
        let mut merged: BTreeMap<&LayerPath, Document> = BTreeMap::new();
        for (layer, _, out) in generated {
            let doc = merged.entry(layer).or_default();
            for (key, value) in confstrata_core::doc::leaves(out) {
                confstrata_core::doc::set(doc, &key, value.clone())?;
            }
        }
        let current = self.export_layers(caller, ns, at)?;
        let mut ops = Vec::new();
        for (layer, doc) in merged {
            // Reading what is there is part of writing over it.
            g.require(Action::Read, Resource::layer(ns.clone(), layer.clone()))?;
            let here = || format!("namespace {ns} layer {layer}");
            let stored = current.iter().find(|r| r.layer == *layer);
            let mut changed = Vec::new();
            for (key, value) in confstrata_core::doc::leaves(&doc) {
                if self.security.rule.matches(&key) {
                    return Err(Error::invalid(
                        here(),
                        format!(
                            "a generator computes {key}, which the secret rule seals; a generator's output is plain text, so it may not set secrets (set them with confstrata set --secret)"
                        ),
                    ));
                }
                let Some(stored) = stored else { continue };
                if stored.sealed_keys.iter().any(|s| covers(s, &key)) {
                    return Err(Error::invalid(
                        here(),
                        format!(
                            "a generator computes {key}, which holds a sealed value there; a generator's output is plain text and never replaces a secret"
                        ),
                    ));
                }
                if confstrata_core::doc::get(&stored.document, &key) != Some(value) {
                    changed.push((key, value.clone(), false));
                }
            }
            match stored {
                Some(stored) => ops.extend(Op::set_keys(ns, layer, changed, Some(stored.revision))),
                None => ops.push(Op::Put {
                    namespace: ns.clone(),
                    layer: layer.clone(),
                    document: doc,
                    expect_revision: Some(0),
                }),
            }
        }
        Ok(ops)
    }

    /// The value the namespace's own generators compute at `key` in
    /// `layer`, and the generator's id; `None` when none computes it (or
    /// they cannot run for `caller` at `at`: explain never fails for it).
    pub(crate) fn generated_value(
        &self,
        caller: &Caller,
        spec: &NamespaceSpec,
        at: At,
        layer: &LayerPath,
        key: &KeyPath,
    ) -> Option<(String, Value)> {
        let level = spec.levels.iter().find(|l| l.matches(layer).is_some())?;
        if !spec.generators.iter().any(|g| g.level == level.as_str()) {
            return None;
        }
        let generated = templates::run_generators(
            &format!("namespace {}", spec.name),
            spec,
            &spec.generators,
            &Map::new(),
            Some(&self.lookup(caller, at)),
            Some(layer),
        )
        .ok()?;
        generated
            .into_iter()
            .find_map(|(_, id, out)| confstrata_core::doc::get(&out, key).map(|v| (id, v.clone())))
    }
}

/// Whether the sealed key `sealed` (as a layer record names it) covers
/// `key`: the same key, or a table above it.
fn covers(sealed: &KeyPath, key: &KeyPath) -> bool {
    key.segments().starts_with(sealed.segments())
}
