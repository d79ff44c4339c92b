//! The rhai side: the sandboxed engine, compiling validators and rules,
//! running them, and converting values. `Dynamic` never leaves this module
//! except inside the crate's private types.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use confstrata_core::{Context, Document, NamespaceName, ValidatorSpec};
use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicIteratorPackage, BasicMapPackage, BasicMathPackage,
    BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{
    AST, CallFnOptions, Dynamic, Engine, EvalAltResult, NativeCallContext, Position, Scope,
};
use serde_json::Value;

use crate::Limits;

/// The name of the function a rule's check is wrapped in.
pub(crate) const RULE_FN: &str = "__confstrata_rule";

/// What `on_progress` returns to stop a script that ran out of time.
const TIMEOUT_TOKEN: &str = "confstrata:timeout";

/// How many operations pass between two looks at the clock.
const CLOCK_EVERY: u64 = 256;

/// Words that cannot name a validator or a parameter.
const RESERVED: &[&str] = &["config", "cfg", "ctx", "value"];

#[derive(Clone, Copy)]
struct Budget {
    deadline: Option<Instant>,
    next_check: u64,
}

thread_local! {
    /// The wall-time budget of the script running on this thread. rhai's
    /// progress callback has no per-run state, and a run never leaves its
    /// thread, so the deadline lives here for the duration of one run.
    static BUDGET: Cell<Budget> = const { Cell::new(Budget { deadline: None, next_check: 0 }) };
}

/// Sets this thread's deadline for one script run; restores the previous one on drop.
struct RunGuard(Budget);

thread_local! {
    /// A deadline over every run on this thread (a commit's validation
    /// budget): a run stops at whichever comes first, it or its own limit.
    static OUTER: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with every script run on this thread stopped at `deadline` at
/// the latest.
pub(crate) fn with_outer_deadline<T>(deadline: Option<Instant>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OUTER.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OUTER.with(|o| o.replace(deadline)));
    f()
}

impl RunGuard {
    fn start(limits: &Limits) -> RunGuard {
        let own = Instant::now().checked_add(limits.max_duration);
        let deadline = match (own, OUTER.with(Cell::get)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let budget = Budget {
            deadline,
            next_check: 0,
        };
        RunGuard(BUDGET.with(|b| b.replace(budget)))
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        BUDGET.with(|b| b.set(self.0));
    }
}

fn on_progress(ops: u64) -> Option<Dynamic> {
    BUDGET.with(|cell| {
        let mut budget = cell.get();
        if ops < budget.next_check {
            return None;
        }
        budget.next_check = ops.saturating_add(CLOCK_EVERY);
        cell.set(budget);
        match budget.deadline {
            Some(deadline) if Instant::now() >= deadline => Some(Dynamic::from(TIMEOUT_TOKEN)),
            _ => None,
        }
    })
}

/// The namespaces a cross-namespace rule may read, fetched once per check:
/// the document as a rhai value, or why it is not available.
pub(crate) type Fetched = BTreeMap<String, Result<Dynamic, String>>;

thread_local! {
    /// What `config()` reads in a whole-script run (a generator), which
    /// rhai's `eval` gives no per-run tag for; set for one run on its thread.
    static SCRIPT_FETCHED: std::cell::RefCell<Option<Arc<Fetched>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `config()` reading `fetched` on this thread.
pub(crate) fn with_fetched<T>(fetched: Arc<Fetched>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<Fetched>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCRIPT_FETCHED.with(|f| *f.borrow_mut() = previous);
        }
    }
    let _restore = Restore(SCRIPT_FETCHED.with(|f| f.borrow_mut().replace(fetched)));
    f()
}

/// An error raised by `config()` (not thrown by the script itself).
#[derive(Debug, Clone)]
struct ConfigError(String);

fn config_error(message: String, ctx: &NativeCallContext<'_>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(ConfigError(message)),
        ctx.call_position(),
    ))
}

/// `config("name")`: another namespace's resolved configuration for the
/// same context, from what the check fetched before running the cross rules.
fn config_fn(ctx: NativeCallContext<'_>, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    let fetched = ctx
        .tag()
        .and_then(|tag| tag.read_lock::<Arc<Fetched>>().map(|f| Arc::clone(&f)))
        .or_else(|| SCRIPT_FETCHED.with(|f| f.borrow().clone()));
    let Some(fetched) = fetched else {
        return Err(config_error(
            format!(
                "config({name:?}) is only available in rules that name the namespace with a string literal, like config(\"billing\")"
            ),
            &ctx,
        ));
    };
    match fetched.get(name) {
        Some(Ok(doc)) => Ok(doc.clone()),
        Some(Err(reason)) => Err(config_error(reason.clone(), &ctx)),
        None => Err(config_error(
            format!(
                "config({name:?}): only namespaces named by a string literal in the rule can be read"
            ),
            &ctx,
        )),
    }
}

/// The engine shared by everything one [`crate::Compiled`] runs.
pub(crate) struct Sandbox {
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    /// The validators, as functions, and nothing else.
    pub(crate) lib: AST,
    /// Validator name → its declaration.
    pub(crate) validators: BTreeMap<String, ValidatorSpec>,
}

/// Builds the sandboxed engine: no I/O, no `eval`, no modules, no
/// `print`/`debug` output, no `sleep`, no clock; with limits.
pub(crate) fn engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    // Only pure, in-memory packages: LanguageCorePackage (sleep, exit,
    // parse_json), BasicTimePackage (the clock), BasicFnPackage and
    // BasicBlobPackage are left out.
    for module in [
        ArithmeticPackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicStringPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
        BasicMathPackage::new().as_shared_module(),
        BasicIteratorPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(module);
    }
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.disable_symbol("export");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.set_strict_variables(true);
    engine.set_fail_on_invalid_map_property(true);
    engine.set_max_modules(0);
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.on_progress(on_progress);
    engine.register_fn("config", config_fn);
    engine
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Renders a rhai position, shifted up by `line_offset` lines of wrapper.
pub(crate) fn where_(pos: Position, line_offset: usize, max_line: usize) -> Option<String> {
    let line = pos
        .line()?
        .saturating_sub(line_offset)
        .clamp(1, max_line.max(1));
    Some(match pos.position() {
        Some(col) => format!("line {line}, column {col}"),
        None => format!("line {line}"),
    })
}

pub(crate) fn line_count(source: &str) -> usize {
    source.lines().count().max(1)
}

/// Compiles `source` wrapped as `fn name(params) {\n source \n}` and checks
/// that nothing else was defined (a `}` in the source cannot add functions).
fn compile_fn(engine: &Engine, name: &str, params: &[&str], source: &str) -> Result<AST, String> {
    let wrapped = format!("fn {name}({}) {{\n{source}\n}}", params.join(", "));
    let ast = engine.compile(&wrapped).map_err(|err| {
        let rhai::ParseError(kind, pos) = err;
        // Line 1 is the wrapper's header: only a name or parameter that
        // rhai reserves can fail there.
        if pos.line() == Some(1) {
            return format!(
                "its name or a parameter is a word rhai reserves ({kind}); choose another"
            );
        }
        // Past the last line of the source is the wrapper's closing brace:
        // the source ended too early.
        if pos
            .line()
            .is_some_and(|l| l.saturating_sub(1) > line_count(source))
        {
            return format!("at the end: it is incomplete ({kind})");
        }
        match where_(pos, 1, line_count(source)) {
            Some(at) => format!("{at}: {kind}"),
            None => kind.to_string(),
        }
    })?;
    // Closures compile to anonymous functions (`anon$...`, a name no
    // script can write); anything else must be the wrapper itself.
    let functions: Vec<_> = ast
        .iter_functions()
        .filter(|f| !f.name.starts_with("anon$"))
        .collect();
    match functions.as_slice() {
        [f] if f.name == name && f.params.len() == params.len() => Ok(ast),
        _ => Err(
            "it must be an expression or statements, not function definitions (unbalanced braces?)"
                .into(),
        ),
    }
}

/// Compiles the validators into one library of functions.
pub(crate) fn compile_validators(
    engine: &Engine,
    what: &str,
    specs: &[ValidatorSpec],
) -> Result<(AST, BTreeMap<String, ValidatorSpec>), confstrata_core::Error> {
    let mut lib = AST::empty();
    let mut by_name = BTreeMap::new();
    for spec in specs {
        let here = format!("{what}: validator {:?}", spec.name);
        let invalid = |reason: String| confstrata_core::Error::invalid(&here, reason);
        if !is_identifier(&spec.name) || spec.name.starts_with("__") {
            return Err(invalid(
                "a validator name must be an identifier (letters, digits, `_`, not starting with a digit or `__`), like `is_power_of_two`".into(),
            ));
        }
        if RESERVED.contains(&spec.name.as_str()) {
            return Err(invalid(format!(
                "`{}` is reserved; choose another name",
                spec.name
            )));
        }
        if by_name.contains_key(&spec.name) {
            return Err(invalid(
                "declared twice; validator names must be unique".into(),
            ));
        }
        let mut params = vec!["value"];
        for param in &spec.params {
            if !is_identifier(param) || RESERVED.contains(&param.as_str()) {
                return Err(invalid(format!(
                    "parameter {param:?} must be an identifier other than {}",
                    RESERVED.join(", ")
                )));
            }
            if params.contains(&param.as_str()) {
                return Err(invalid(format!("parameter {param:?} is declared twice")));
            }
            params.push(param);
        }
        if !scan_config_calls(&spec.body).is_ok_and(|calls| calls.is_empty()) {
            return Err(invalid(
                "a validator cannot read other namespaces with config(); do that in a rule".into(),
            ));
        }
        let ast = compile_fn(engine, &spec.name, &params, &spec.body)
            .map_err(|reason| invalid(format!("does not compile: {reason}")))?;
        lib = lib.merge(&ast);
        by_name.insert(spec.name.clone(), spec.clone());
    }
    Ok((lib, by_name))
}

/// A compiled rule check: the wrapper function plus the validators.
pub(crate) fn compile_rule(engine: &Engine, lib: &AST, source: &str) -> Result<AST, String> {
    let ast = compile_fn(engine, RULE_FN, &["cfg", "ctx"], source)?;
    Ok(lib.merge(&ast))
}

/// Finds the namespaces a script reads with `config("name")`.
///
/// A small scanner that knows rhai's comments and string literals, so
/// `config(` inside a string or comment is not a call. Every call must take
/// one plain string literal: that is what makes the set of namespaces a
/// rule reads known at compile time.
pub(crate) fn scan_config_calls(source: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    scan_code(source.as_bytes(), 0, 0, &mut found)?;
    Ok(found)
}

/// Skips a `"..."` string starting at `i` (the opening quote); returns the
/// index after the closing quote and whether it contained a backslash.
fn skip_string(bytes: &[u8], mut i: usize) -> (usize, bool) {
    let mut escaped = false;
    i += 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => return (i + 1, escaped),
            _ => i += 1,
        }
    }
    (bytes.len(), escaped)
}

fn starts(bytes: &[u8], i: usize, pattern: &[u8]) -> bool {
    bytes.get(i..).is_some_and(|rest| rest.starts_with(pattern))
}

fn skip_ws_and_comments(bytes: &[u8], mut i: usize) -> usize {
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if starts(bytes, i, b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if starts(bytes, i, b"/*") {
            i = skip_block_comment(bytes, i);
        } else {
            return i;
        }
    }
}

/// rhai block comments nest.
fn skip_block_comment(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        if starts(bytes, i, b"/*") {
            depth += 1;
            i += 2;
        } else if starts(bytes, i, b"*/") {
            depth = depth.saturating_sub(1);
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Deepest nesting of `${...}` inside back-tick strings the scanner follows.
const MAX_INTERPOLATION_DEPTH: usize = 32;

/// Scans code from `i`; inside an interpolation (`depth` > 0), stops after
/// the `}` that closes its `${`. Returns the index reached.
fn scan_code(
    bytes: &[u8],
    mut i: usize,
    depth: usize,
    found: &mut Vec<String>,
) -> Result<usize, String> {
    if depth > MAX_INTERPOLATION_DEPTH {
        return Err(format!(
            "string interpolations nest deeper than {MAX_INTERPOLATION_DEPTH} levels"
        ));
    }
    let in_interpolation = depth > 0;
    let mut braces = 0usize;
    let mut previous = b' ';
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'/' if starts(bytes, i, b"//") || starts(bytes, i, b"/*") => {
                i = skip_ws_and_comments(bytes, i);
                continue;
            }
            b'"' => i = skip_string(bytes, i).0,
            b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    if starts(bytes, i, b"${") {
                        i = scan_code(bytes, i + 2, depth + 1, found)?;
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            b'{' => {
                braces += 1;
                i += 1;
            }
            b'}' => {
                i += 1;
                if braces == 0 && in_interpolation {
                    return Ok(i);
                }
                braces = braces.saturating_sub(1);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if &bytes[start..i] == b"config" && previous != b'.' {
                    let open = skip_ws_and_comments(bytes, i);
                    if bytes.get(open) == Some(&b'(') {
                        let arg = skip_ws_and_comments(bytes, open + 1);
                        let literal = (bytes.get(arg) == Some(&b'"'))
                            .then(|| skip_string(bytes, arg))
                            .filter(|(_, escaped)| !escaped)
                            .map(|(end, _)| end);
                        let close = literal.map(|end| skip_ws_and_comments(bytes, end));
                        match (literal, close) {
                            (Some(end), Some(close)) if bytes.get(close) == Some(&b')') => {
                                let name = bytes.get(arg + 1..end - 1).unwrap_or_default();
                                found.push(String::from_utf8_lossy(name).into_owned());
                                i = close + 1;
                            }
                            _ => {
                                return Err(
                                    "config() must be called with one plain string literal, the namespace name, like config(\"billing\")".into(),
                                );
                            }
                        }
                    }
                }
                previous = b'a';
                continue;
            }
            _ => i += 1,
        }
        if !c.is_ascii_whitespace() {
            previous = c;
        }
    }
    Ok(i)
}

/// Converts a JSON value into a rhai value: integers as `i64` (larger ones
/// as floats), floats, strings, arrays, maps, `null` as `()`.
pub(crate) fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(map) => document_to_dynamic(map),
    }
}

/// Converts a document into a rhai object map.
pub(crate) fn document_to_dynamic(doc: &Document) -> Dynamic {
    Dynamic::from_map(
        doc.iter()
            .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
            .collect(),
    )
}

/// Converts a context into a rhai object map of strings.
pub(crate) fn context_to_dynamic(ctx: &Context) -> Dynamic {
    Dynamic::from_map(
        ctx.iter()
            .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
            .collect(),
    )
}

/// Longest message kept from a script (a thrown value, an error).
const MAX_MESSAGE: usize = 500;

pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Where a script came from, for positions in messages.
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// A rule's check (wrapped: one line of offset).
    Rule(&'a str),
    /// A validator body (wrapped: one line of offset).
    Validator(&'a str),
    /// A whole script, as written (a generator: no offset).
    Script(&'a str),
}

impl Sandbox {
    /// Explains a script error in words, with the line and column in the
    /// user's source when rhai gives them.
    pub(crate) fn explain(&self, err: &EvalAltResult, origin: Origin<'_>) -> String {
        let (source, offset) = match origin {
            Origin::Rule(s) | Origin::Validator(s) => (s, 1),
            Origin::Script(s) => (s, 0),
        };
        let at = |pos: Position| {
            where_(pos, offset, line_count(source))
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        };
        let limits = &self.limits;
        let msg = match err {
            EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) => {
                let inner_origin = match self.validators.get(name) {
                    Some(spec) => Origin::Validator(&spec.body),
                    None => origin,
                };
                let kind = if self.validators.contains_key(name) {
                    "validator"
                } else {
                    "function"
                };
                return truncate(format!(
                    "in {kind} {name}{}: {}",
                    at(*pos),
                    self.explain(inner, inner_origin)
                ));
            }
            EvalAltResult::ErrorTooManyOperations(pos) => format!(
                "stopped after {} operations, the limit (an endless loop?){}",
                limits.max_operations,
                at(*pos)
            ),
            EvalAltResult::ErrorStackOverflow(pos) => format!(
                "stopped: function calls nested deeper than {} levels, the limit (endless recursion?){}",
                limits.max_call_depth,
                at(*pos)
            ),
            EvalAltResult::ErrorDataTooLarge(what, pos) => format!(
                "stopped: {what} went over the limit (strings {} bytes, arrays {} items, maps {} entries){}",
                limits.max_string_size,
                limits.max_array_size,
                limits.max_map_size,
                at(*pos)
            ),
            EvalAltResult::ErrorTerminated(token, pos) if token.to_string() == TIMEOUT_TOKEN => {
                format!(
                    "stopped after running longer than {:?}, the limit{}",
                    limits.max_duration,
                    at(*pos)
                )
            }
            EvalAltResult::ErrorRuntime(value, pos) => match value.read_lock::<ConfigError>() {
                Some(config) => format!("{}{}", config.0, at(*pos)),
                None => format!("threw {}{}", value, at(*pos)),
            },
            EvalAltResult::ErrorPropertyNotFound(prop, pos) => {
                format!("no key {prop:?} here{}", at(*pos))
            }
            EvalAltResult::ErrorFunctionNotFound(sig, pos) => {
                let sig = sig
                    .replace("&str | ImmutableString | String", "string")
                    .replace("ImmutableString", "string");
                format!("no function {sig}{}", at(*pos))
            }
            other => {
                let pos = other.position();
                let mut text = other.to_string();
                // rhai appends its own position ("(line 2, position 5)"): drop it.
                if let Some(cut) = text.rfind(" (line ") {
                    text.truncate(cut);
                }
                let mut out = text;
                let _ = write!(out, "{}", at(pos));
                out
            }
        };
        truncate(msg)
    }

    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = RunGuard::start(&self.limits);
        f()
    }

    /// Runs a rule's compiled check.
    pub(crate) fn run_rule(
        &self,
        ast: &AST,
        cfg: &Dynamic,
        ctx: &Dynamic,
        fetched: Option<&Arc<Fetched>>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        if let Some(fetched) = fetched {
            options = options.with_tag(Arc::clone(fetched));
        }
        self.run(|| {
            self.engine.call_fn_with_options::<Dynamic>(
                options,
                &mut Scope::new(),
                ast,
                RULE_FN,
                (cfg.clone(), ctx.clone()),
            )
        })
    }

    /// Runs a validator on a value: `Ok(())` when it passes, otherwise the
    /// failure message.
    pub(crate) fn run_validator(
        &self,
        name: &str,
        value: &Value,
        args: &[Dynamic],
    ) -> Result<(), String> {
        let Some(spec) = self.validators.get(name) else {
            return Err(format!("no validator named {name:?}"));
        };
        let mut call_args = Vec::with_capacity(args.len() + 1);
        call_args.push(to_dynamic(value));
        call_args.extend(args.iter().cloned());
        let result = self.run(|| {
            self.engine.call_fn_with_options::<Dynamic>(
                CallFnOptions::new().eval_ast(false),
                &mut Scope::new(),
                &self.lib,
                name,
                call_args,
            )
        });
        match result {
            Err(err) => Err(format!(
                "validator {name} failed with a script error: {}",
                self.explain(&err, Origin::Validator(&spec.body))
            )),
            Ok(out) => outcome(out).map_err(|failure| match failure {
                Failure::False => {
                    if spec.description.is_empty() {
                        format!("failed {name}")
                    } else {
                        format!("failed {name}: {}", spec.description)
                    }
                }
                Failure::Message(m) => m,
                Failure::Type(t) => format!(
                    "validator {name} returned a value of type {t}; it must return true, false or a message string"
                ),
            }),
        }
    }
}

/// How a script said no.
pub(crate) enum Failure {
    /// It returned `false`.
    False,
    /// It returned a message.
    Message(String),
    /// It returned something else (its type).
    Type(&'static str),
}

/// Interprets a script's result: `true` passes, `false` or a string fails.
pub(crate) fn outcome(value: Dynamic) -> Result<(), Failure> {
    if let Ok(b) = value.as_bool() {
        return if b { Ok(()) } else { Err(Failure::False) };
    }
    if value.is_string() {
        let text = value.into_string().unwrap_or_default();
        return Err(if text.is_empty() {
            Failure::False
        } else {
            Failure::Message(truncate(text))
        });
    }
    Err(Failure::Type(value.type_name()))
}

/// Fetches the namespaces the cross rules read, converted for rhai.
pub(crate) fn fetch(
    references: &std::collections::BTreeSet<NamespaceName>,
    context: &Context,
    lookup: &dyn crate::Lookup,
) -> Arc<Fetched> {
    let mut out = Fetched::new();
    for ns in references {
        let entry = match lookup.resolved(ns, context) {
            Ok(Some(doc)) => Ok(document_to_dynamic(&doc)),
            Ok(None) => Err(format!(
                "config({:?}): there is no namespace named {:?}",
                ns.as_str(),
                ns.as_str()
            )),
            Err(reason) => Err(format!(
                "config({:?}): could not read it: {reason}",
                ns.as_str()
            )),
        };
        out.insert(ns.as_str().to_owned(), entry);
    }
    Arc::new(out)
}
