//! Changes: authorization of every op, sealing, the audited commit, the
//! dry run and rollback.

use std::sync::Arc;

use confstrata_core::timing::Timings as _;

use confstrata_access::{Action, Outcome, Resource};
use confstrata_core::serde_json::Value;
use confstrata_core::view::Rollback;
use confstrata_core::{
    At, ChangeSet, CommitDone, CommitInfo, Document, Error, LayerPath, NamespaceName,
    NamespaceRecord, NamespaceSpec, Op, Result, diff,
};

use crate::security::{Caller, Gate, contains_sealed, crypto_error, journal_fn};
use crate::validate::{Candidate, Scope, has_errors};
use crate::{DryRun, Engine, LayerDiff, LayerStatus};

impl Engine {
    /// Commits a change set. Every op is authorized first (`write` on the
    /// namespace for `put-namespace`, on the layer for `put` and `delete`,
    /// on the key for `set` and `unset`); values are sealed; the audit
    /// record is written in the commit's transaction.
    pub fn commit(&self, caller: &Caller, changes: &ChangeSet) -> Result<CommitInfo> {
        let g = self.gate(caller);
        self.authorize_changes(&g, changes, Action::Write)?;
        self.seal_and_commit(&g, changes, false, Action::Write, "commit")
    }

    /// Seals a change set and commits it. When it needs a namespace's first
    /// data key, the key is created only once everything that can refuse
    /// the change set has passed on the state it will land on (planning,
    /// validation): a refused request leaves no key behind. Sealing first
    /// uses a throwaway key for that check, then the real key once stored.
    fn seal_and_commit(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        trusted: bool,
        action: Action,
        operation: &str,
    ) -> Result<CommitInfo> {
        let (sealed, new_keys) = self.seal_changes(g, changes, trusted)?;
        if new_keys.is_empty() {
            return self.commit_validated(g, &sealed, action, operation);
        }
        if let Err(e) = self.precheck(&sealed) {
            self.audit_refused(g, changes, action, operation, &e);
            return Err(e);
        }
        for ns in &new_keys {
            self.rotate_key_inner(g, ns, "first data key")?;
        }
        let (sealed, missing) = self.seal_changes(g, changes, trusted)?;
        if !missing.is_empty() {
            return Err(Error::storage("a data key created for this commit is gone"));
        }
        self.commit_validated(g, &sealed, action, operation)
    }

    /// What a commit of `changes` would refuse on the current state
    /// (planning, preconditions, validation errors), writing nothing.
    fn precheck(&self, changes: &ChangeSet) -> Result<()> {
        let _shared = self.validator.lock.read();
        let revision = self.store.revision()?;
        let mut reader = crate::StoreReader {
            store: &*self.store,
            revision,
        };
        let plan =
            confstrata_core::plan(changes, &mut reader, &confstrata_core::Limits::default())?;
        let candidate = Candidate::with_plan(&*self.store, revision, &plan);
        if self.validator.needed(&candidate, &plan)? {
            let findings = self.validator.check_plan(&candidate, &plan)?;
            if has_errors(&findings) {
                return Err(Error::Validation { findings });
            }
        }
        Ok(())
    }

    /// The audit record of a change set refused before it reached the store.
    fn audit_refused(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
        error: &Error,
    ) {
        let error = match error.root() {
            Error::Validation { findings } => {
                format!("validation failed: {} findings", findings.len())
            }
            other => other.to_string(),
        };
        let refused = g
            .entry(action, changes_resource(changes), Outcome::Failed)
            .detail("operation", operation)
            .detail("ops", describe_ops(changes))
            .detail("error", error);
        if let Err(w) = self
            .store
            .append_journal(journal_fn(&self.security, refused))
        {
            tracing::warn!(error = %w, "the audit record of a refused commit could not be written");
        }
    }

    /// Validates a sealed change set against the state it will land on and
    /// commits it. A refusal is audited.
    ///
    /// The commit first holds the namespace locks of its scope (`locks`):
    /// shared on what it writes when no chain is affected, so such commits
    /// go straight to the store together and keep group commit; exclusive
    /// on everything a validation reads or writes otherwise, so nothing can
    /// land between what was validated and what is committed (a validated
    /// commit lets go once queued in the writer: the next one is checked
    /// against it, `pipeline`), while commits to unrelated namespaces go on. Validation runs in the calling thread,
    /// never in the store's writer, so a slow chain delays only the commits
    /// whose outcome can depend on it.
    pub(crate) fn commit_validated(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
    ) -> Result<CommitInfo> {
        self.timed(confstrata_core::timing::Phase::Commit, || {
            self.commit_in_scope(g, changes, action, operation)
        })
    }

    fn commit_in_scope(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
    ) -> Result<CommitInfo> {
        let declares = changes
            .ops
            .iter()
            .any(|op| matches!(op, confstrata_core::Op::PutNamespace { .. }));
        loop {
            let generation = self.validator.generation();
            let revision = self.store.revision()?;
            let scope = self.validator.scope(&*self.store, revision, changes)?;
            let (want, validated) = match scope {
                Scope::Everything => {
                    let _alone = self.validator.lock.write();
                    let result = self.validate_and_store(g, changes, action, operation);
                    self.validator.declarations_changed();
                    return result;
                }
                Scope::Namespaces { want, validated } => (want, validated),
            };
            let scope: std::collections::BTreeSet<NamespaceName> = want.0.keys().cloned().collect();
            let _shared = self.validator.lock.read();
            let held = self.validator.ns_locks.acquire(want);
            if self.validator.generation() != generation {
                // A declaration committed while this one waited: its scope
                // may have changed. Decide again.
                continue;
            }
            if !validated {
                let result = self.store_commit(g, changes, action, operation, None);
                if declares {
                    // Before the locks go, even when no chain ran (a chain
                    // removed): see `Validator::declarations_changed`.
                    self.validator.declarations_changed();
                }
                return result;
            }
            let pipelined = !declares
                && changes.ops.iter().all(|op| match op {
                    Op::PutNamespace {
                        expect_revision, ..
                    }
                    | Op::Put {
                        expect_revision, ..
                    }
                    | Op::Set {
                        expect_revision, ..
                    }
                    | Op::Unset {
                        expect_revision, ..
                    }
                    | Op::Delete {
                        expect_revision, ..
                    }
                    | Op::DeleteNamespace {
                        expect_revision, ..
                    } => expect_revision.is_none(),
                });
            if pipelined {
                match self.commit_pipelined(g, changes, action, operation, &scope, held)? {
                    Some(info) => return Ok(info),
                    // A commit it was validated against failed: again.
                    None => continue,
                }
            }
            // Preconditions and declarations: on the store alone, once
            // nothing queued touches the scope, holding the locks until
            // durable.
            self.validator.queue.wait_idle(&scope);
            let result = self.validate_and_store(g, changes, action, operation);
            if declares {
                // Before the locks go: see `Validator::declarations_changed`.
                self.validator.declarations_changed();
            }
            drop(held);
            return result;
        }
    }

    /// Validates a change set against the store plus the validated commits
    /// queued before it (`pipeline`), queues it in the store's writer, and
    /// releases `held` once it is queued, so the next commit to the same
    /// namespaces validates while this one is written. `None`: a queued
    /// commit it was validated against failed, so it was not committed and
    /// must be validated again.
    fn commit_pipelined(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
        scope: &std::collections::BTreeSet<NamespaceName>,
        held: crate::locks::Held,
    ) -> Result<Option<CommitInfo>> {
        // The overlay before the revision: see `pipeline`.
        let overlay = self.validator.queue.overlay(scope);
        let revision = self.store.revision()?;
        let mut reader = crate::pipeline::OverlayReader {
            store: &*self.store,
            revision,
            overlay: &overlay,
        };
        let Ok(plan) =
            confstrata_core::plan(changes, &mut reader, &confstrata_core::Limits::default())
        else {
            if overlay.is_empty() {
                // Nothing queued touches the scope and its locks are held:
                // the store fails it just the same (and audits it).
                return self
                    .store_commit(g, changes, action, operation, None)
                    .map(Some);
            }
            // Against queued writes that may still fail: never send it
            // unchecked. Once they are done, plan it again.
            self.validator.queue.wait_idle(scope);
            return Ok(None);
        };
        let mut candidate = Candidate::with_plan(&*self.store, revision, &plan);
        candidate.overlay = overlay.clone();
        self.check_or_refuse(g, changes, action, operation, &candidate, &plan)?;
        drop(candidate);
        let ticket = crate::pipeline::Ticket::push(&self.validator.queue, &plan);
        let (pending, journal) = self.begin_commit(g, changes, action, operation);
        let stale = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let check: Option<confstrata_core::CheckFn> = if overlay.is_empty() {
            None
        } else {
            let stale = Arc::clone(&stale);
            Some(Box::new(move |_plan, reader| {
                if overlay.holds_in(reader)? {
                    Ok(())
                } else {
                    stale.store(true, std::sync::atomic::Ordering::SeqCst);
                    Err(Error::storage(
                        "a commit this one was validated against did not commit",
                    ))
                }
            }))
        };
        let (tx, rx) = std::sync::mpsc::channel();
        self.store.commit_then(
            changes.clone(),
            Some(journal),
            check,
            Box::new(move |committed| {
                let _ = tx.send(committed);
            }),
        );
        // Queued: the next commit to these namespaces may validate now.
        drop(held);
        let committed = rx
            .recv()
            .unwrap_or_else(|_| Err(Error::storage("the store's writer went away")));
        ticket.finish(committed.is_ok());
        if stale.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = self.end_commit_audited(pending, committed, false);
            return Ok(None);
        }
        self.end_commit(pending, committed).map(Some)
    }

    /// Plans, validates and commits; the caller holds the locks of the
    /// change set's scope.
    fn validate_and_store(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
    ) -> Result<CommitInfo> {
        let revision = self.store.revision()?;
        let mut reader = crate::StoreReader {
            store: &*self.store,
            revision,
        };
        // A change set that does not plan fails in the store just the same
        // (and is audited there).
        let Ok(plan) =
            confstrata_core::plan(changes, &mut reader, &confstrata_core::Limits::default())
        else {
            return self.store_commit(g, changes, action, operation, None);
        };
        let candidate = Candidate::with_plan(&*self.store, revision, &plan);
        self.check_or_refuse(g, changes, action, operation, &candidate, &plan)?;
        // In the queue too, so that a pipelined commit's overlay never puts
        // an older queued write over this one (`pipeline`).
        let ticket = crate::pipeline::Ticket::push(&self.validator.queue, &plan);
        let result = self.store_commit(g, changes, action, operation, None);
        ticket.finish(result.is_ok());
        result
    }

    /// A commit's validation: the chains its plan affects, over
    /// `candidate`; an error finding refuses it, audited.
    fn check_or_refuse(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
        candidate: &Candidate<'_>,
        plan: &confstrata_core::Plan,
    ) -> Result<()> {
        if !self.validator.needed(candidate, plan)? {
            return Ok(());
        }
        if let Some(hook) = self.validator.hook() {
            hook();
        }
        let findings = self.timed(confstrata_core::timing::Phase::Validate, || {
            self.validator.check_plan(candidate, plan)
        })?;
        if has_errors(&findings) {
            let e = Error::Validation { findings };
            self.audit_refused(g, changes, action, operation, &e);
            return Err(e);
        }
        Ok(())
    }

    /// Runs the validation chains on the current state: every context of
    /// `namespace`'s matrix, or of every namespace the caller may read that
    /// has a chain. Commits nothing.
    pub fn validate(
        &self,
        caller: &Caller,
        namespace: Option<&NamespaceName>,
    ) -> Result<Vec<confstrata_core::Finding>> {
        let g = self.gate(caller);
        let revision = self.store.revision()?;
        let specs = match namespace {
            Some(ns) => {
                g.require_some(Action::Read, ns)?;
                vec![
                    self.store
                        .namespace(ns, revision)?
                        .ok_or_else(|| Error::NamespaceNotFound {
                            namespace: ns.to_string(),
                        })?
                        .spec,
                ]
            }
            None => self
                .store
                .namespaces(revision)?
                .into_iter()
                .map(|r| r.spec)
                .filter(|s| {
                    self.allows_some(caller, Action::Read, &Resource::namespace(s.name.clone()))
                })
                .collect(),
        };
        let candidate = Candidate::current(&*self.store, revision);
        let library = self.validator.library(&candidate)?;
        // On a stack that fits the deepest check (see `check_plan`).
        let findings = confstrata_rules::on_check_stack(|| {
            let mut findings = Vec::new();
            let mut spend = self.validator.spend();
            for spec in specs.iter().filter(|s| !s.validation.is_empty()) {
                let contexts = spec.matrix_contexts();
                findings.extend(self.validator.check_namespace(
                    &candidate,
                    &library,
                    spec,
                    contexts.iter(),
                    &mut spend,
                )?);
            }
            Ok::<_, Error>(findings)
        })
        .map_err(Error::storage)??;
        Ok(findings)
    }

    /// Commits a change set that is already authorized, sealed and
    /// validated, with its audit record (and `check`, run inside the
    /// store's transaction), and notifies watchers.
    pub(crate) fn store_commit(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
        check: Option<confstrata_core::CheckFn>,
    ) -> Result<CommitInfo> {
        let (pending, journal) = self.begin_commit(g, changes, action, operation);
        let committed = self.store.commit_checked(changes, Some(journal), check);
        self.end_commit(pending, committed)
    }

    /// The one entry for a commit from an async front end: the engine
    /// decides how it runs. [`Route::Queued`]: authorized, sealed and
    /// queued in the store's writer from the calling thread (microseconds,
    /// no I/O), awaiting nothing; `done` gets the result once it is
    /// durable, on the thread that wrote it. [`Route::Blocking`]: it must
    /// run where blocking is allowed ([`BlockingCommit::run`], which calls
    /// `done`), because it declares a namespace, a chain must check it
    /// (validation never runs on an async thread or in the writer), it
    /// needs a namespace's first data key (a durable write), finding its
    /// scope would read the store (the index of chains is being rebuilt),
    /// the caller may not make one of its changes (the refusal is audited,
    /// which writes), or a validation holds one of its namespaces right now.
    pub fn submit(&self, caller: &Caller, changes: ChangeSet, done: CommitDone) -> Route {
        match self.try_queue(caller, &changes, done) {
            Ok(()) => Route::Queued,
            Err(done) => Route::Blocking(Box::new(BlockingCommit {
                engine: self.clone(),
                caller: caller.clone(),
                changes,
                done,
            })),
        }
    }

    /// Queues a commit in the store's writer if it can go there without
    /// I/O in this thread; hands `done` back otherwise ([`Engine::submit`]).
    fn try_queue(
        &self,
        caller: &Caller,
        changes: &ChangeSet,
        done: CommitDone,
    ) -> std::result::Result<(), CommitDone> {
        if changes
            .ops
            .iter()
            .any(|op| matches!(op, Op::PutNamespace { .. }))
        {
            return Err(done);
        }
        let g = self.gate(caller);
        if !changes
            .ops
            .iter()
            .all(|op| g.allows(Action::Write, &op_resource(op)))
        {
            return Err(done);
        }
        // Shared with other commits that declare nothing; released by the
        // store's writer once this one is written.
        let Some(shared) = self.validator.lock.try_read_arc() else {
            return Err(done);
        };
        let started = self.timings.start();
        let generation = self.validator.generation();
        let prepared = (|| {
            let (sealed, new_keys) = self.seal_changes(&g, changes, false)?;
            if !new_keys.is_empty() {
                // A first data key: created only after the blocking path's
                // precheck.
                return Ok(None);
            }
            let revision = self.store.revision()?;
            match self
                .validator
                .scope_in_memory(&*self.store, revision, &sealed)?
            {
                // Finding the scope would read the store (the index of
                // chains is being rebuilt): the blocking path.
                None
                // A validation runs on the blocking path.
                | Some(Scope::Everything)
                | Some(Scope::Namespaces {
                    validated: true, ..
                }) => Ok(None),
                Some(Scope::Namespaces { want, .. }) => {
                    // Shared locks, released by the writer with the
                    // validation lock; taken only if free right now.
                    let Some(held) = self.validator.ns_locks.try_acquire(want) else {
                        return Ok(None);
                    };
                    if self.validator.generation() != generation {
                        return Ok(None);
                    }
                    Ok(Some((sealed, held)))
                }
            }
        })();
        let (sealed, held) = match prepared {
            Ok(Some(p)) => p,
            Ok(None) => {
                drop(shared);
                return Err(done);
            }
            Err(e) => {
                drop(shared);
                done(Err(e));
                return Ok(());
            }
        };
        let (pending, journal) = self.begin_commit(&g, &sealed, Action::Write, "commit");
        let engine = self.clone();
        self.store.commit_then(
            sealed,
            Some(journal),
            None,
            Box::new(move |committed| {
                let result = engine.end_commit(pending, committed);
                drop(held);
                drop(shared);
                started.stop(&*engine.timings, confstrata_core::timing::Phase::Commit);
                // Before the caller learns the result: once it has, it may
                // drop its engine, and this clone must not be the last one
                // (the store would then close on its own writer thread,
                // which cannot join itself, and release its lock late).
                drop(engine);
                done(result);
            }),
        );
        Ok(())
    }

    /// Before a change set goes to the store: the view cache serves
    /// nothing of the namespaces it touches while it is in flight (and
    /// learns its revision before anyone else); the journal record of its
    /// success, and what [`Engine::end_commit`] needs.
    fn begin_commit(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        action: Action,
        operation: &str,
    ) -> (PendingCommit, confstrata_core::JournalFn) {
        let resource = changes_resource(changes);
        let ops = describe_ops(changes);
        let entry = g
            .entry(action, resource.clone(), Outcome::Success)
            .detail("operation", operation)
            .detail("message", changes.message.clone())
            .detail("ops", ops.clone());
        let touched: std::collections::BTreeSet<&NamespaceName> =
            changes.ops.iter().map(Op::namespace).collect();
        let touched: Vec<_> = touched
            .into_iter()
            .map(|ns| {
                self.views.begin(ns);
                (
                    ns.clone(),
                    crate::view::incremental::patches_of(changes, ns),
                )
            })
            .collect();
        let pending = PendingCommit {
            caller: g.caller.clone(),
            action,
            resource,
            operation: operation.to_owned(),
            ops,
            touched,
        };
        (pending, journal_fn(&self.security, entry))
    }

    /// After the store answered: the view cache learns the revision (and
    /// the change log the patches), watchers are notified, and a failure is
    /// audited (its own record; the failure itself is what the caller sees).
    fn end_commit(
        &self,
        pending: PendingCommit,
        committed: Result<CommitInfo>,
    ) -> Result<CommitInfo> {
        self.end_commit_audited(pending, committed, true)
    }

    /// [`Engine::end_commit`]; a failure is audited only if `audit_failure`
    /// (not when the commit is about to be tried again).
    fn end_commit_audited(
        &self,
        pending: PendingCommit,
        committed: Result<CommitInfo>,
        audit_failure: bool,
    ) -> Result<CommitInfo> {
        if let Ok(info) = &committed {
            // Before `finish`: a reader that sees the change finished finds
            // it in the log.
            let mut logs = crate::lock(&self.changes);
            for (ns, patches) in &pending.touched {
                crate::view::incremental::record(&mut logs, ns, patches.clone(), info.revision);
            }
        }
        for (ns, _) in &pending.touched {
            self.views
                .finish(ns, committed.as_ref().ok().map(|i| i.revision));
        }
        match committed {
            Ok(info) => {
                self.notify(info.revision);
                Ok(info)
            }
            Err(e) if !audit_failure => Err(e),
            Err(e) => {
                let failed = self
                    .gate(&pending.caller)
                    .entry(pending.action, pending.resource, Outcome::Failed)
                    .detail("operation", pending.operation)
                    .detail("ops", pending.ops)
                    .detail("error", e.root().to_string());
                if let Err(w) = self
                    .store
                    .append_journal(journal_fn(&self.security, failed))
                {
                    tracing::warn!(error = %w, "the audit record of a failed commit could not be written");
                }
                Err(e)
            }
        }
    }

    /// Refuses unless the caller may do every op of a change set.
    fn authorize_changes(&self, g: &Gate<'_>, changes: &ChangeSet, action: Action) -> Result<()> {
        for op in &changes.ops {
            g.require(action, op_resource(op))?;
            // Importing a namespace shows its values through the importer
            // (to those who may read them there): the declarer must be
            // able to read some of it.
            if let Op::PutNamespace { spec, .. } = op {
                for import in &spec.imports {
                    g.require_some(Action::Read, import)?;
                }
            }
        }
        Ok(())
    }

    /// Seals what a change set asks for (`secret`) and what the secret rule
    /// matches; refuses `$sealed` tables written by a user (`trusted` is
    /// for change sets the engine built from stored documents).
    ///
    /// Writes nothing: a namespace with no data key yet is sealed under a
    /// throwaway key and returned in the set, for the caller to create its
    /// key once nothing can refuse the change set, and seal again.
    pub(crate) fn seal_changes(
        &self,
        g: &Gate<'_>,
        changes: &ChangeSet,
        trusted: bool,
    ) -> Result<(ChangeSet, std::collections::BTreeSet<NamespaceName>)> {
        let mut probe = Probe::default();
        let mut out = changes.clone();
        if !g.caller.is_local() || out.author.is_empty() {
            out.author = g.caller.author();
        }
        let mask = Value::String(confstrata_crypto::MASK.to_owned());
        for (index, op) in out.ops.iter_mut().enumerate() {
            let at = |e: Error| Error::Operation {
                index,
                op: op_name(index, changes),
                source: Box::new(e),
            };
            match op {
                Op::Put {
                    namespace,
                    layer,
                    document,
                    ..
                } => {
                    if !trusted && document.values().any(contains_sealed) {
                        return Err(at(sealed_by_user()));
                    }
                    if !trusted
                        && let Some((key, _)) = confstrata_core::doc::leaves(document)
                            .into_iter()
                            .find(|(_, v)| **v == mask)
                    {
                        return Err(at(mask_written(&key.to_string())));
                    }
                    if !trusted && document.contains_key(confstrata_core::doc::SEALED_MARKER_KEY) {
                        return Err(at(sealed_by_user()));
                    }
                    self.with_data_key(&mut probe, namespace, |keyring| {
                        confstrata_crypto::seal_matching(
                            document,
                            keyring,
                            namespace,
                            layer,
                            &self.security.rule,
                        )
                    })
                    .map_err(at)?;
                }
                Op::Set {
                    namespace,
                    layer,
                    key,
                    value,
                    secret,
                    ..
                } => {
                    if !trusted
                        && (contains_sealed(value)
                            || key
                                .segments()
                                .iter()
                                .any(|s| s == confstrata_core::doc::SEALED_MARKER_KEY))
                    {
                        return Err(at(sealed_by_user()));
                    }
                    if !trusted && contains_mask(value, &mask) {
                        return Err(at(mask_written(&key.to_string())));
                    }
                    if confstrata_core::doc::is_delete_marker(value) {
                        if *secret {
                            return Err(at(Error::invalid(
                                format!("set {namespace}:{layer} {key}"),
                                "a delete marker cannot be sealed",
                            )));
                        }
                        continue;
                    }
                    let mut doc = Document::new();
                    confstrata_core::doc::set(&mut doc, key, std::mem::take(value)).map_err(at)?;
                    let explicit = *secret;
                    let key_path = key.clone();
                    self.with_data_key(&mut probe, namespace, |keyring| {
                        if explicit {
                            confstrata_crypto::seal_paths(
                                &mut doc,
                                keyring,
                                namespace,
                                layer,
                                std::slice::from_ref(&key_path),
                            )
                        } else {
                            confstrata_crypto::seal_matching(
                                &mut doc,
                                keyring,
                                namespace,
                                layer,
                                &self.security.rule,
                            )
                        }
                    })
                    .map_err(at)?;
                    *value = confstrata_core::doc::get(&doc, key)
                        .cloned()
                        .unwrap_or(Value::Null);
                    *secret = false;
                }
                Op::DeleteNamespace { namespace, .. }
                    if crate::templates::is_templates(namespace) =>
                {
                    return Err(at(Error::invalid(
                        format!("namespace {namespace}"),
                        "it holds the stored user templates, whose versions are never deleted",
                    )));
                }
                // A namespace's generators must compile, declaring what
                // they read (their shape is the declaration's own check).
                Op::PutNamespace { spec, .. } if !trusted && !spec.generators.is_empty() => {
                    confstrata_templates::check_namespace_generators(spec).map_err(at)?;
                }
                Op::PutNamespace { .. }
                | Op::Unset { .. }
                | Op::Delete { .. }
                | Op::DeleteNamespace { .. } => {}
            }
        }
        Ok((out, probe.namespaces))
    }

    /// Runs `f` with the keyring; for a namespace with no data key yet,
    /// with `probe`'s throwaway keyring instead (nothing is stored).
    fn with_data_key<T>(
        &self,
        probe: &mut Probe,
        ns: &NamespaceName,
        mut f: impl FnMut(&confstrata_crypto::Keyring) -> confstrata_crypto::Result<T>,
    ) -> Result<T> {
        {
            let keyring = self
                .security
                .keyring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match f(&keyring) {
                Err(confstrata_crypto::Error::NoDataKey { .. }) => {}
                other => return other.map_err(crypto_error),
            }
        }
        let throwaway = match &mut probe.keyring {
            Some(k) => k,
            none => none.insert(confstrata_crypto::Keyring::new(
                confstrata_crypto::MasterKey::generate().map_err(crypto_error)?,
            )),
        };
        if throwaway.current(ns).is_none() {
            throwaway.rotate(ns).map_err(crypto_error)?;
        }
        match f(throwaway) {
            // `f` needed no key after all.
            Err(confstrata_crypto::Error::NoDataKey { .. }) => Err(Error::storage("no data key")),
            other => {
                probe.namespaces.insert(ns.clone());
                other.map_err(crypto_error)
            }
        }
    }

    /// Checks a change set against the current state exactly as a commit
    /// would (authorization and sealing included), and returns the diff it
    /// would make, without committing. New sealed values show as the mask.
    pub fn dry_run(&self, caller: &Caller, changes: &ChangeSet) -> Result<DryRun> {
        let g = self.gate(caller);
        self.authorize_changes(&g, changes, Action::Write)?;
        let (sealed, _new_keys) = self.seal_changes(&g, changes, false)?;
        let revision = self.store.revision()?;
        let mut reader = crate::StoreReader {
            store: &*self.store,
            revision,
        };
        let plan =
            confstrata_core::plan(&sealed, &mut reader, &confstrata_core::Limits::default())?;
        let candidate = Candidate::with_plan(&*self.store, revision, &plan);
        let findings = if self.validator.needed(&candidate, &plan)? {
            self.validator.check_plan(&candidate, &plan)?
        } else {
            Vec::new()
        };
        let mut layers = Vec::new();
        for (ns, layer, new) in &plan.layers {
            let old = self.store.layer(ns, layer, revision)?.map(|r| r.document);
            let empty = Document::new();
            let changes = diff(
                old.as_ref().unwrap_or(&empty),
                new.as_ref().unwrap_or(&empty),
            );
            let changes = self.present_diff_masked(changes);
            let status = match (&old, new) {
                (None, _) => LayerStatus::Created,
                (_, None) => LayerStatus::Deleted,
                _ if changes.is_empty() => continue,
                _ => LayerStatus::Changed,
            };
            layers.push(LayerDiff {
                namespace: ns.clone(),
                layer: layer.clone(),
                status,
                changes,
            });
        }
        Ok(DryRun {
            revision,
            layers,
            namespaces: plan
                .namespaces
                .into_iter()
                .map(|s| s.name)
                .chain(plan.deleted)
                .collect(),
            findings,
        })
    }

    /// A change set for display: every sealed value masked (a rollback
    /// plan holds the stored ciphertexts).
    pub fn masked_change_set(&self, mut changes: ChangeSet) -> ChangeSet {
        for op in &mut changes.ops {
            match op {
                Op::Put { document, .. } => {
                    confstrata_crypto::mask(document);
                }
                Op::Set { value, .. } if contains_sealed(value) => {
                    crate::present::mask_value(value)
                }
                _ => {}
            }
        }
        changes
    }

    /// Masks every sealed value in diff entries.
    fn present_diff_masked(
        &self,
        entries: Vec<confstrata_core::DiffEntry>,
    ) -> Vec<confstrata_core::DiffEntry> {
        entries
            .into_iter()
            .map(|mut e| {
                for v in [&mut e.old, &mut e.new].into_iter().flatten() {
                    if contains_sealed(v) {
                        crate::present::mask_value(v);
                    }
                }
                e
            })
            .collect()
    }

    /// Rolls a namespace (or one of its layers) back to its state at `to`,
    /// as a new change set guarded by preconditions (planned once), and
    /// commits it unless `dry_run`. Needs `publish` on every layer it
    /// changes. The answer's change set has sealed values masked; both
    /// parts are `None` when the target already matches.
    pub fn rollback(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        message: &str,
        dry_run: bool,
    ) -> Result<Rollback> {
        let g = self.gate(caller);
        g.require_some(Action::Publish, ns)?;
        let plan = self.rollback_changes(ns, layer, to, &g.caller.author(), message)?;
        self.finish_rollback(&g, plan, dry_run)
    }

    /// Authorizes a rollback's change set (`publish` on every layer it
    /// changes) and commits it unless `dry_run`; sealed values masked in
    /// the answer, both parts `None` when there is nothing to change.
    fn finish_rollback(
        &self,
        g: &crate::security::Gate<'_>,
        plan: Option<ChangeSet>,
        dry_run: bool,
    ) -> Result<Rollback> {
        let Some(plan) = plan else {
            return Ok(Rollback {
                commit: None,
                change_set: None,
            });
        };
        self.authorize_changes(g, &plan, Action::Publish)?;
        let commit = if dry_run {
            None
        } else {
            Some(self.seal_and_commit(g, &plan, true, Action::Publish, "rollback")?)
        };
        Ok(Rollback {
            commit,
            change_set: Some(self.masked_change_set(plan)),
        })
    }

    /// [`Engine::rollback`] to a state read from the server's backups
    /// instead of its live history (for a state retention has removed):
    /// the chain up to `to` is restored into memory and the namespace (or
    /// layer) compared with it. Needs `backup` on everything besides
    /// `publish`.
    pub fn rollback_from_backup(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        message: &str,
        dry_run: bool,
    ) -> Result<Rollback> {
        let g = self.gate(caller);
        g.require(Action::Backup, Resource::everything())?;
        g.require_some(Action::Publish, ns)?;
        let (source, report) = self.restore_in_memory(to)?;
        let message = if message.is_empty() {
            let what = layer.map_or_else(|| ns.to_string(), |l| format!("{ns}:{l}"));
            format!(
                "rollback {what} to revision {} from backup {}",
                report.revision,
                report.chain.last().map_or("", String::as_str)
            )
        } else {
            message.to_owned()
        };
        let plan = self.rollback_plan(
            &source,
            report.revision,
            ns,
            layer,
            &g.caller.author(),
            &message,
        )?;
        self.finish_rollback(&g, plan, dry_run)
    }

    /// Declares a namespace: creates it, or with `replace` replaces its
    /// declaration. Without `replace`, an existing namespace is
    /// [`Error::AlreadyExists`]. Answers with the namespace as committed
    /// and the commit.
    pub fn create_namespace(
        &self,
        caller: &Caller,
        spec: NamespaceSpec,
        replace: bool,
        message: &str,
    ) -> Result<(NamespaceRecord, CommitInfo)> {
        let name = spec.name.clone();
        let cs = ChangeSet {
            author: String::new(),
            message: if message.is_empty() {
                format!("create namespace {name}")
            } else {
                message.to_owned()
            },
            ops: vec![Op::PutNamespace {
                spec,
                expect_revision: if replace { None } else { Some(0) },
            }],
        };
        let info = self.commit(caller, &cs).map_err(|err| match err.root() {
            Error::Conflict { .. } if !replace => Error::AlreadyExists {
                what: format!(
                    "namespace {name:?} (replace it to change its declaration: `ns create --replace`, or `replace` in the request)"
                ),
            },
            _ => err,
        })?;
        let record = self.namespace(caller, &name, At::Revision(info.revision))?;
        Ok((record, info))
    }

    fn rollback_changes(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        author: &str,
        message: &str,
    ) -> Result<Option<ChangeSet>> {
        let target = self.store.revision_at(to)?;
        self.rollback_plan(&*self.store, target, ns, layer, author, message)
    }

    /// The change set that brings `ns` (or one layer) back to its state in
    /// `source` at `target` (the live store, or a store restored from
    /// backups), with preconditions on the live one.
    pub(crate) fn rollback_plan(
        &self,
        source: &dyn confstrata_core::Store,
        target: u64,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        author: &str,
        message: &str,
    ) -> Result<Option<ChangeSet>> {
        let current = self.store.revision()?;
        let old_spec = source.namespace(ns, target)?.ok_or_else(|| {
            Error::invalid(
                format!("rollback of {ns}"),
                format!("the namespace did not exist at revision {target}"),
            )
        })?;
        // A namespace deleted since is declared again (whole: a layer of a
        // namespace that does not exist cannot be rolled back alone), its
        // layers put back as they were, sealed values under the data key
        // they were sealed with (a deletion leaves the keyring).
        let now_spec = match (self.store.namespace(ns, current)?, layer) {
            (Some(now), _) => Some(now),
            (None, None) => None,
            (None, Some(l)) => {
                return Err(Error::invalid(
                    format!("rollback of {ns}:{l}"),
                    format!(
                        "namespace {ns} does not exist now: roll back the whole namespace (without a layer) to bring it back"
                    ),
                ));
            }
        };
        // Deletions first, under the declaration as it is (which may have
        // levels or context values the old one lacks), then the old
        // declaration, then the layers as they were (valid under it).
        let mut ops = Vec::new();
        let mut puts = Vec::new();
        let declaration = match &now_spec {
            _ if layer.is_some() => None,
            Some(now) if now.spec == old_spec.spec => None,
            now => Some(Op::PutNamespace {
                spec: old_spec.spec,
                expect_revision: Some(now.as_ref().map_or(0, |n| n.revision)),
            }),
        };
        let (old, new) = match layer {
            Some(l) => (
                source.layer(ns, l, target)?.into_iter().collect::<Vec<_>>(),
                self.store
                    .layer(ns, l, current)?
                    .into_iter()
                    .collect::<Vec<_>>(),
            ),
            None if now_spec.is_none() => (source.layers(ns, target)?, Vec::new()),
            None => (source.layers(ns, target)?, self.store.layers(ns, current)?),
        };
        for r in &new {
            match old.iter().find(|o| o.layer == r.layer) {
                Some(o) if o.document == r.document => {}
                Some(o) => puts.push(Op::Put {
                    namespace: ns.clone(),
                    layer: r.layer.clone(),
                    document: o.document.clone(),
                    expect_revision: Some(r.revision),
                }),
                None => ops.push(Op::Delete {
                    namespace: ns.clone(),
                    layer: r.layer.clone(),
                    expect_revision: Some(r.revision),
                }),
            }
        }
        for o in &old {
            if !new.iter().any(|r| r.layer == o.layer) {
                puts.push(Op::Put {
                    namespace: ns.clone(),
                    layer: o.layer.clone(),
                    document: o.document.clone(),
                    expect_revision: Some(0),
                });
            }
        }
        ops.extend(declaration);
        ops.extend(puts);
        if ops.is_empty() {
            return Ok(None);
        }
        let what = layer.map_or_else(|| ns.to_string(), |l| format!("{ns}:{l}"));
        let message = if message.is_empty() {
            format!("rollback {what} to revision {target}")
        } else {
            message.to_owned()
        };
        Ok(Some(ChangeSet {
            author: author.to_owned(),
            message,
            ops,
        }))
    }
}

/// What sealing needed that does not exist yet: the namespaces without a
/// data key, and a throwaway keyring that sealed their values for checks.
#[derive(Default)]
struct Probe {
    keyring: Option<confstrata_crypto::Keyring>,
    namespaces: std::collections::BTreeSet<NamespaceName>,
}

fn sealed_by_user() -> Error {
    Error::invalid(
        "value",
        "`$sealed` tables are written only by the server; send the plain value with `secret` set (CLI: `set --secret`)",
    )
}

/// Writing the mask would replace a secret with the text `<sealed>`: that
/// happens when an export is imported, so it is refused.
fn mask_written(key: &str) -> Error {
    Error::invalid(
        format!("value of {key}"),
        "\"<sealed>\" is the mask of a secret (exports do not carry secrets); set the real value with `set --secret`, or leave the key out",
    )
}

fn contains_mask(v: &Value, mask: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().any(|v| contains_mask(v, mask)),
        Value::Array(a) => a.iter().any(|v| contains_mask(v, mask)),
        other => other == mask,
    }
}

fn op_name(index: usize, changes: &ChangeSet) -> String {
    changes.ops.get(index).map(Op::describe).unwrap_or_default()
}

/// The resource an audit record of a change set names: its namespace if it
/// touches one, everything otherwise.
/// What an op changes, for authorization: the namespace for
/// `put-namespace`, the layer for `put` and `delete`, the key for `set` and
/// `unset`.
fn op_resource(op: &Op) -> Resource {
    match op {
        Op::PutNamespace { spec, .. } => Resource::namespace(spec.name.clone()),
        Op::DeleteNamespace { namespace, .. } => Resource::namespace(namespace.clone()),
        Op::Put {
            namespace, layer, ..
        }
        | Op::Delete {
            namespace, layer, ..
        } => Resource::layer(namespace.clone(), layer.clone()),
        Op::Set {
            namespace,
            layer,
            key,
            ..
        }
        | Op::Unset {
            namespace,
            layer,
            key,
            ..
        } => Resource::key(namespace.clone(), layer.clone(), key.clone()),
    }
}

/// A change set on its way to the store (see [`Engine::commit_async`]).
struct PendingCommit {
    caller: Caller,
    action: Action,
    resource: Resource,
    operation: String,
    ops: String,
    /// The namespaces it changes, with the patches it makes to each.
    touched: Vec<(
        NamespaceName,
        Option<Arc<[crate::view::incremental::Patch]>>,
    )>,
}

fn changes_resource(changes: &ChangeSet) -> Resource {
    let mut names = changes.ops.iter().map(Op::namespace);
    match names.next() {
        Some(first) if names.all(|n| n == first) => Resource::namespace(first.clone()),
        _ => Resource::everything(),
    }
}

/// The ops of a change set, one per line, without values.
fn describe_ops(changes: &ChangeSet) -> String {
    changes
        .ops
        .iter()
        .map(Op::describe)
        .collect::<Vec<_>>()
        .join("\n")
}

/// How [`Engine::submit`] runs a commit.
#[must_use = "a blocking commit does nothing until it is run"]
pub enum Route {
    /// Queued in the store's writer; `done` will be called with the result.
    Queued,
    /// To be run on a thread that may block (boxed: the variants stay
    /// close in size).
    Blocking(Box<BlockingCommit>),
}

/// A commit that must run on a thread that may block (a blocking pool's).
pub struct BlockingCommit {
    engine: Engine,
    caller: Caller,
    changes: ChangeSet,
    done: CommitDone,
}

impl BlockingCommit {
    /// Commits ([`Engine::commit`]) and calls `done` with the result.
    pub fn run(self) {
        let result = self.engine.commit(&self.caller, &self.changes);
        (self.done)(result);
    }
}

impl std::fmt::Debug for BlockingCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingCommit")
            .field("ops", &self.changes.ops.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Queued => f.write_str("Queued"),
            Route::Blocking(b) => b.fmt(f),
        }
    }
}
