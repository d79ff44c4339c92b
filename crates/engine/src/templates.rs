//! Templates on the engine: generators read other namespaces through the
//! caller's grants, and `explain` says what a template renders where a
//! namespace was made from one.

use confstrata_core::{
    At, Context, Document, EntryOrigin, Error, Explanation, NamespaceName, NamespaceSpec,
};
use confstrata_templates::{Lookup, Rendered, Source};

use crate::Engine;
use crate::security::Caller;

/// What generators (and a rendered namespace's cross-namespace rules)
/// read with `config("name")`: that namespace's resolved configuration, as
/// `caller` may read it (sealed values masked unless the caller may read
/// secrets), for the variables of the context that namespace uses.
pub struct CallerLookup<'a> {
    engine: &'a Engine,
    caller: &'a Caller,
    at: At,
}

impl Engine {
    /// A [`Lookup`] over this engine as `caller` at `at`, for rendering
    /// templates whose generators read other namespaces.
    pub fn lookup<'a>(&'a self, caller: &'a Caller, at: At) -> CallerLookup<'a> {
        CallerLookup {
            engine: self,
            caller,
            at,
        }
    }

    /// Renders again the template a namespace was made from, with the
    /// parameters it recorded; `None` when it records none or the
    /// template is not known here.
    pub(crate) fn rendered_origin(
        &self,
        caller: &Caller,
        spec: &NamespaceSpec,
        at: At,
    ) -> confstrata_core::Result<Option<(String, Rendered)>> {
        let Some(origin) = &spec.template else {
            return Ok(None);
        };
        let id = format!("{}@{}", origin.name, origin.version);
        let template = match confstrata_templates::find(&id) {
            Ok(t) => t,
            Err(Error::TemplateNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let rendered =
            template.render_with(&spec.name, &origin.parameters, &self.lookup(caller, at))?;
        Ok(Some((id, rendered)))
    }

    /// Fills each entry's [`EntryOrigin`] when the namespace was made from
    /// a template. Best effort: a template that cannot be rendered again
    /// (a generator reads a namespace the caller may not read) leaves the
    /// entries as they are; explain never fails for it.
    pub(crate) fn explain_origins(
        &self,
        caller: &Caller,
        spec: &NamespaceSpec,
        at: At,
        explanation: &mut Explanation,
    ) {
        let Ok(Some((id, rendered))) = self.rendered_origin(caller, spec, at) else {
            return;
        };
        let key = explanation.key.clone();
        for e in &mut explanation.entries {
            let source = rendered.source(&e.layer, &key);
            let template_value = rendered
                .layer(&e.layer)
                .and_then(|d| confstrata_core::doc::get(d, &key))
                .cloned();
            // A sealed value is masked or opened by now; a template never
            // renders one, so it is an override either way.
            let overridden = e.deleted || template_value.is_none() || e.value != template_value;
            e.origin = Some(EntryOrigin {
                template: id.clone(),
                generator: match source {
                    Some(Source::Generator(g)) => Some(g),
                    _ => None,
                },
                template_value,
                overridden,
            });
        }
    }
}

impl Lookup for CallerLookup<'_> {
    fn resolved(
        &self,
        namespace: &NamespaceName,
        context: &Context,
    ) -> std::result::Result<Option<Document>, String> {
        let spec = match self.engine.namespace(self.caller, namespace, self.at) {
            Ok(record) => record.spec,
            Err(Error::NamespaceNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let vars = spec.variables();
        let ctx: Context = context
            .iter()
            .filter(|(k, _)| vars.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.engine
            .resolve_section(self.caller, namespace, &ctx, None, self.at)
            .map(|view| Some(view.document))
            .map_err(|e| e.to_string())
    }
}
