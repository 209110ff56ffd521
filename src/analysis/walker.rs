//! The scope-aware AST walk behind [`super::analyze_block`].
//!
//! Every parsed text (a cell, a `%%time` body, a `%time` argument, a `{expr}`
//! in a shell escape) is a slice of the current cell, so a single `base`
//! offset maps parser offsets back to cell locations.

use std::collections::{BTreeSet, HashMap};

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{
    self as ast, Expr, ExprContext, IpyEscapeKind, Mod, Parameters, Pattern, Stmt,
};
use ruff_python_parser::Mode;
use ruff_text_size::{Ranged, TextRange, TextSize};

use super::effects::{self, StateKind, UnsaveableKind};
use super::ipython::{self, CellMagicBody, Interpolation};
use super::scope::{Scope, ScopeKind, import_binding};
use super::source::{LineIndex, parse};
use super::{
    BlockFacts, CallFact, CellSource, DynamicKind, DynamicUse, FunctionFacts, InnerCall,
    IpythonKind, IpythonUse, Location, Occurrence, Share, StateUse, SyntaxIssue, Unsaveable,
    is_builtin,
};

/// `own_from`: index of the first cell whose reads and bindings also go to
/// `own_first_read` / `own_first_bind` (a step's own cells, after the shared ones).
pub(crate) fn analyze(cells: &[CellSource], own_from: usize) -> BlockFacts {
    let mut a = Analyzer {
        cell: 0,
        src: "",
        index: LineIndex::new(""),
        base: 0,
        scopes: vec![Scope::new(ScopeKind::Module)],
        target: Target::Module,
        acc: None,
        local_alias: HashMap::new(),
        seq: 0,
        own: false,
        facts: BlockFacts::default(),
    };
    for (i, cell) in cells.iter().enumerate() {
        a.own = i >= own_from;
        a.cell = cell.number;
        a.src = cell.source;
        a.index = LineIndex::new(cell.source);
        a.analyze_cell();
    }
    let mut facts = a.facts;
    // Builtins read by functions only matter when this block shadows them.
    let bound = &facts.first_bind;
    for f in facts.functions.values_mut() {
        f.global_reads
            .retain(|n| !is_builtin(n) || bound.contains_key(n));
    }
    facts
}

/// Where global reads and writes currently go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Executed when the block runs.
    Module,
    /// Executed when the top-level function/class being defined is called:
    /// recorded in `Analyzer::acc`.
    Function,
}

struct Analyzer<'s> {
    cell: usize,
    src: &'s str,
    index: LineIndex<'s>,
    /// Offset of the text being walked within `src`.
    base: usize,
    scopes: Vec<Scope>,
    target: Target,
    /// Facts of the top-level def/class/lambda being defined.
    acc: Option<FunctionFacts>,
    /// In that definition's body: local names bound to values that may hold objects of
    /// its parameters or of globals (`rows = data`), so changing them changes those.
    local_alias: HashMap<String, BTreeSet<String>>,
    seq: u32,
    /// Whether the cell being walked is one of the block's own (see `analyze`).
    own: bool,
    facts: BlockFacts,
}

impl Analyzer<'_> {
    // ---- locations and parsing -------------------------------------------

    fn at(&self, offset: TextSize) -> Location {
        self.index
            .location(self.cell, self.base + offset.to_usize())
    }

    fn at_abs(&self, offset: usize) -> Location {
        self.index.location(self.cell, offset)
    }

    fn text(&self, range: TextRange) -> &str {
        let start = self.base + range.start().to_usize();
        let end = self.base + range.end().to_usize();
        self.src.get(start..end).unwrap_or_default()
    }

    fn analyze_cell(&mut self) {
        let src = self.src;
        let Some(magic) = ipython::split_cell_magic(src) else {
            self.walk_text(0, src.len(), Mode::Ipython, true);
            return;
        };
        self.facts.ipython.push(IpythonUse {
            kind: IpythonKind::CellMagic,
            name: magic.name.to_owned(),
            text: src[magic.start..].trim_end().to_owned(),
            at: self.at_abs(magic.start),
        });
        match ipython::classify_cell_magic(magic.name) {
            CellMagicBody::Foreign => {}
            CellMagicBody::Python { line_is_code } => {
                let (args, args_at) = magic.args;
                if line_is_code {
                    if let Some((code, off)) = ipython::python_argument(magic.name, args) {
                        let start = args_at + off;
                        self.walk_text(start, start + code.len(), Mode::Ipython, true);
                    }
                } else if magic.name == "capture" {
                    self.capture_target(args, args_at);
                }
                self.walk_text(magic.body_start, src.len(), Mode::Ipython, true);
            }
            CellMagicBody::Unknown => {
                self.walk_text(magic.body_start, src.len(), Mode::Ipython, false);
            }
        }
    }

    /// `%%capture [--no-stdout ...] out` binds `out`.
    fn capture_target(&mut self, args: &str, args_at: usize) {
        let mut off = 0;
        for word in args.split_whitespace() {
            let pos = args[off..].find(word).map_or(off, |p| off + p);
            off = pos + word.len();
            if !word.starts_with('-') {
                let at = self.at_abs(args_at + pos);
                self.module_bind(word, at);
                return;
            }
        }
    }

    /// Parses `src[start..end]` and walks it. With `report_errors` false, a
    /// text with syntax errors is ignored entirely (it probably isn't Python).
    fn walk_text(&mut self, start: usize, end: usize, mode: Mode, report_errors: bool) {
        let Some(text) = self.src.get(start..end) else {
            return;
        };
        let saved = self.base;
        self.base = start;
        match parse(text, mode) {
            Err(message) => {
                if report_errors {
                    let at = self.at_abs(start);
                    self.facts.syntax_errors.push(SyntaxIssue {
                        message: message.to_owned(),
                        at,
                    });
                }
            }
            Ok(parsed) => {
                if !parsed.errors().is_empty() {
                    if !report_errors {
                        self.base = saved;
                        return;
                    }
                    // The first error only, as Python reports it: the parser's
                    // recovery makes the ones after it mostly echoes of the first.
                    if let Some(e) = parsed.errors().first() {
                        let at = self.at(e.location.start());
                        self.facts.syntax_errors.push(SyntaxIssue {
                            message: super::syntax_message(e, text),
                            at,
                        });
                    }
                }
                match parsed.syntax() {
                    Mod::Module(m) => self.stmts(&m.body),
                    Mod::Expression(e) => self.visit_expr(&e.body),
                }
            }
        }
        self.base = saved;
    }

    // ---- recording --------------------------------------------------------

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn module_read(&mut self, name: &str, at: Location) {
        let seq = self.next_seq();
        self.facts
            .first_read
            .entry(name.to_owned())
            .or_insert(Occurrence { seq, at });
        if self.own {
            self.facts
                .own_first_read
                .entry(name.to_owned())
                .or_insert(Occurrence { seq, at });
        }
    }

    fn module_bind(&mut self, name: &str, at: Location) {
        let seq = self.next_seq();
        self.facts
            .first_bind
            .entry(name.to_owned())
            .or_insert(Occurrence { seq, at });
        self.facts
            .last_bind
            .insert(name.to_owned(), Occurrence { seq, at });
        if self.own {
            self.facts
                .own_first_bind
                .entry(name.to_owned())
                .or_insert(Occurrence { seq, at });
        }
        self.facts.deleted.remove(name);
    }

    fn global_read(&mut self, name: &str, at: Location) {
        match (self.target, &mut self.acc) {
            (Target::Function, Some(acc)) => {
                acc.global_reads.insert(name.to_owned());
            }
            _ => self.module_read(name, at),
        }
    }

    fn global_write(&mut self, name: &str, at: Location) {
        match (self.target, &mut self.acc) {
            (Target::Function, Some(acc)) => {
                acc.global_writes.insert(name.to_owned());
            }
            _ => self.module_bind(name, at),
        }
    }

    fn dynamic(&mut self, kind: DynamicKind, at: Location) {
        self.facts.dynamic.push(DynamicUse { kind, at });
    }

    // ---- name resolution --------------------------------------------------

    /// Whether a load of `name` here resolves to the module namespace.
    fn is_global(&self, name: &str) -> bool {
        let innermost = self.scopes.len() - 1;
        for (i, scope) in self.scopes.iter().enumerate().rev() {
            if scope.globals.contains(name) {
                return true;
            }
            match scope.kind {
                ScopeKind::Module => return true,
                // Class namespaces are invisible to nested scopes.
                ScopeKind::Class if i != innermost => continue,
                _ if scope.nonlocals.contains(name) => continue,
                _ if scope.locals.contains(name) => return false,
                _ => {}
            }
        }
        true
    }

    fn read(&mut self, name: &str, at: Location) {
        if self.is_global(name) {
            self.global_read(name, at);
        }
    }

    fn bind(&mut self, name: &str, at: Location) {
        let idx = self.scopes.len() - 1;
        self.bind_in(idx, name, at);
    }

    /// Walrus targets bind in the nearest enclosing non-comprehension scope.
    fn bind_walrus(&mut self, name: &str, at: Location) {
        let idx = self
            .scopes
            .iter()
            .rposition(|s| s.kind != ScopeKind::Comprehension)
            .unwrap_or(0);
        self.bind_in(idx, name, at);
    }

    fn bind_in(&mut self, idx: usize, name: &str, at: Location) {
        let scope = &mut self.scopes[idx];
        match scope.kind {
            ScopeKind::Module => self.module_bind(name, at),
            _ if scope.globals.contains(name) => self.global_write(name, at),
            ScopeKind::Class => {
                scope.locals.insert(name.to_owned());
            }
            // Function-like scopes know their locals from the pre-pass.
            _ => {}
        }
    }

    fn delete(&mut self, name: &str, at: Location) {
        self.read(name, at);
        let scope = self
            .scopes
            .last_mut()
            .expect("module scope is never popped");
        match scope.kind {
            ScopeKind::Module => {
                self.next_seq();
                self.facts.deleted.insert(name.to_owned());
            }
            _ if scope.globals.contains(name) => self.global_write(name, at),
            ScopeKind::Class => {
                scope.locals.remove(name);
            }
            _ => {}
        }
    }

    fn in_function_scope(&self) -> bool {
        self.scopes.last().is_some_and(|s| {
            matches!(
                s.kind,
                ScopeKind::Function | ScopeKind::Lambda | ScopeKind::Comprehension
            )
        })
    }

    /// At module level (possibly inside a PEP 695 annotation scope).
    fn at_module_level(&self) -> bool {
        self.scopes
            .iter()
            .rev()
            .find(|s| s.kind != ScopeKind::TypeParams)
            .is_some_and(|s| s.kind == ScopeKind::Module)
    }

    // ---- definitions ------------------------------------------------------

    /// Runs `body` as code executed later, when the definition is called.
    /// Returns the facts if this definition is top-level (owns the facts).
    fn deferred(
        &mut self,
        defined_at: Location,
        params: Vec<String>,
        body: impl FnOnce(&mut Self),
    ) -> Option<FunctionFacts> {
        let owns = self.target == Target::Module && self.acc.is_none() && self.at_module_level();
        if owns {
            self.acc = Some(FunctionFacts::new(defined_at, params));
            self.local_alias.clear();
        }
        let saved = self.target;
        if self.acc.is_some() {
            self.target = Target::Function;
        }
        body(self);
        self.target = saved;
        if owns { self.acc.take() } else { None }
    }

    fn parameter_defaults(&mut self, p: &Parameters) {
        for d in p
            .posonlyargs
            .iter()
            .chain(&p.args)
            .chain(&p.kwonlyargs)
            .filter_map(|p| p.default.as_deref())
        {
            self.visit_expr(d);
        }
    }

    fn parameter_annotations(&mut self, p: &Parameters) {
        let all = p
            .posonlyargs
            .iter()
            .chain(&p.args)
            .chain(&p.kwonlyargs)
            .map(|p| &p.parameter)
            .chain(p.vararg.as_deref())
            .chain(p.kwarg.as_deref());
        for param in all {
            if let Some(a) = &param.annotation {
                self.visit_expr(a);
            }
        }
    }

    fn with_type_params(&mut self, params: Option<&ast::TypeParams>, f: impl FnOnce(&mut Self)) {
        let Some(params) = params else { return f(self) };
        for p in &params.type_params {
            let (bound, default) = match p {
                ast::TypeParam::TypeVar(t) => (t.bound.as_deref(), t.default.as_deref()),
                ast::TypeParam::TypeVarTuple(t) => (None, t.default.as_deref()),
                ast::TypeParam::ParamSpec(t) => (None, t.default.as_deref()),
            };
            self.scopes.push(Scope::type_params(params));
            for e in bound.into_iter().chain(default) {
                self.visit_expr(e);
            }
            self.scopes.pop();
        }
        self.scopes.push(Scope::type_params(params));
        f(self);
        self.scopes.pop();
    }

    fn function_def(&mut self, f: &ast::StmtFunctionDef) {
        for d in &f.decorator_list {
            self.visit_expr(&d.expression);
        }
        self.parameter_defaults(&f.parameters);
        let at = self.at(f.name.start());
        let owned = self.with_type_params_ret(f.type_params.as_deref(), |a| {
            a.parameter_annotations(&f.parameters);
            if let Some(r) = &f.returns {
                a.visit_expr(r);
            }
            a.deferred(at, positional_params(Some(&f.parameters)), |a| {
                a.scopes.push(Scope::function(Some(&f.parameters), &f.body));
                a.stmts(&f.body);
                a.scopes.pop();
            })
        });
        self.bind(&f.name.id, at);
        if let Some(facts) = owned {
            self.facts.functions.insert(f.name.id.to_string(), facts);
        }
    }

    fn with_type_params_ret<R>(
        &mut self,
        params: Option<&ast::TypeParams>,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        let mut out = None;
        self.with_type_params(params, |a| out = Some(f(a)));
        out.expect("closure always runs")
    }

    fn class_def(&mut self, c: &ast::StmtClassDef) {
        for d in &c.decorator_list {
            self.visit_expr(&d.expression);
        }
        let at = self.at(c.name.start());
        let top = self.target == Target::Module && self.acc.is_none() && self.at_module_level();
        if top {
            self.acc = Some(FunctionFacts::new(at, Vec::new()));
            self.local_alias.clear();
        }
        self.with_type_params(c.type_params.as_deref(), |a| {
            if let Some(args) = &c.arguments {
                a.visit_arguments(args);
            }
            // The body runs now, in the current target; methods defer.
            a.scopes.push(Scope::new(ScopeKind::Class));
            a.stmts(&c.body);
            a.scopes.pop();
        });
        self.bind(&c.name.id, at);
        if top {
            if let Some(facts) = self.acc.take() {
                self.facts.functions.insert(c.name.id.to_string(), facts);
            }
            self.facts.classes.insert(c.name.id.to_string());
        }
    }

    fn lambda(&mut self, l: &ast::ExprLambda) {
        if let Some(p) = &l.parameters {
            self.parameter_defaults(p);
        }
        let scope = Scope::lambda(l.parameters.as_deref(), &l.body);
        // A lambda inside a class body is a method; elsewhere at module level
        // its reads are attributed to the module (it may be called anywhere).
        let saved = self.target;
        if self.acc.is_some() {
            self.target = Target::Function;
        }
        self.scopes.push(scope);
        self.visit_expr(&l.body);
        self.scopes.pop();
        self.target = saved;
    }

    /// `name = lambda ...` at module level is a function definition.
    fn named_lambda(&mut self, name: &ast::ExprName, l: &ast::ExprLambda) {
        if let Some(p) = &l.parameters {
            self.parameter_defaults(p);
        }
        let at = self.at(name.start());
        let owned = self.deferred(at, positional_params(l.parameters.as_deref()), |a| {
            a.scopes
                .push(Scope::lambda(l.parameters.as_deref(), &l.body));
            a.visit_expr(&l.body);
            a.scopes.pop();
        });
        self.bind(&name.id, at);
        if let Some(facts) = owned {
            self.facts.functions.insert(name.id.to_string(), facts);
        }
    }

    fn comprehension(&mut self, generators: &[ast::Comprehension], elts: &[&Expr]) {
        let Some(first) = generators.first() else {
            return;
        };
        // The first iterable is evaluated in the enclosing scope.
        self.visit_expr(&first.iter);
        self.scopes.push(Scope::comprehension(generators));
        for (i, g) in generators.iter().enumerate() {
            if i > 0 {
                self.visit_expr(&g.iter);
            }
            self.visit_expr(&g.target);
            for e in &g.ifs {
                self.visit_expr(e);
            }
        }
        for e in elts {
            self.visit_expr(e);
        }
        self.scopes.pop();
    }

    // ---- statements -------------------------------------------------------

    fn stmts(&mut self, body: &[Stmt]) {
        for s in body {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => self.function_def(f),
            Stmt::ClassDef(c) => self.class_def(c),
            Stmt::Assign(a) => self.assign(a),
            Stmt::AnnAssign(a) => self.ann_assign(a),
            Stmt::AugAssign(a) => self.aug_assign(a),
            Stmt::TypeAlias(t) => {
                // The value is lazy and may refer to the alias itself.
                self.visit_expr(&t.name);
                self.with_type_params(t.type_params.as_deref(), |a| a.visit_expr(&t.value));
            }
            Stmt::For(f) => {
                self.visit_expr(&f.iter);
                self.visit_expr(&f.target);
                self.shares_with(&f.target, &f.iter);
                self.stmts(&f.body);
                self.stmts(&f.orelse);
            }
            Stmt::While(w) => {
                self.visit_expr(&w.test);
                self.stmts(&w.body);
                self.stmts(&w.orelse);
            }
            Stmt::If(i) => {
                self.visit_expr(&i.test);
                self.stmts(&i.body);
                for clause in &i.elif_else_clauses {
                    if let Some(t) = &clause.test {
                        self.visit_expr(t);
                    }
                    self.stmts(&clause.body);
                }
            }
            Stmt::With(w) => {
                for item in &w.items {
                    self.visit_expr(&item.context_expr);
                    if let Some(v) = &item.optional_vars {
                        self.visit_expr(v);
                        self.shares_with(v, &item.context_expr);
                    }
                }
                self.stmts(&w.body);
            }
            Stmt::Match(m) => {
                self.visit_expr(&m.subject);
                for case in &m.cases {
                    self.visit_pattern(&case.pattern);
                    if let Some(g) = &case.guard {
                        self.visit_expr(g);
                    }
                    self.stmts(&case.body);
                }
            }
            Stmt::Try(t) => self.try_stmt(t),
            Stmt::Import(i) => self.import(i),
            Stmt::ImportFrom(i) => self.import_from(i),
            Stmt::Global(g) => {
                // In function scopes the pre-pass already saw it; at module
                // level it is a no-op.
                if let Some(s) = self.scopes.last_mut()
                    && s.kind == ScopeKind::Class
                {
                    s.globals.extend(g.names.iter().map(|n| n.id.to_string()));
                }
            }
            Stmt::IpyEscapeCommand(c) => self.escape(c.kind, c.range),
            Stmt::Nonlocal(_) | Stmt::Pass(_) | Stmt::Break(_) | Stmt::Continue(_) => {}
            Stmt::Delete(d) => {
                visitor::walk_stmt(self, stmt);
                for t in &d.targets {
                    if !matches!(t, Expr::Name(_)) {
                        self.assigned(t, None);
                    }
                }
            }
            Stmt::Return(_) | Stmt::Raise(_) | Stmt::Assert(_) | Stmt::Expr(_) => {
                visitor::walk_stmt(self, stmt);
            }
        }
    }

    /// `x = ...`; `name = lambda ...` at module level is a definition.
    fn assign(&mut self, a: &ast::StmtAssign) {
        match (&*a.value, a.targets.as_slice()) {
            (Expr::Lambda(l), [Expr::Name(n)]) if self.at_module_level() && self.acc.is_none() => {
                self.named_lambda(n, l);
            }
            _ => {
                self.visit_expr(&a.value);
                for t in &a.targets {
                    self.visit_expr(t);
                    self.assigned(t, Some(&a.value));
                }
            }
        }
    }

    /// `x: T = ...`; the annotation is evaluated outside functions.
    fn ann_assign(&mut self, a: &ast::StmtAnnAssign) {
        let evaluates_annotation = !self.in_function_scope();
        match (&a.value, &*a.target) {
            (Some(v), Expr::Name(n)) if self.at_module_level() && self.acc.is_none() => {
                if let Expr::Lambda(l) = &**v {
                    self.named_lambda(n, l);
                } else {
                    self.visit_expr(v);
                    self.visit_expr(&a.target);
                    self.assigned(&a.target, Some(v));
                }
            }
            (Some(v), _) => {
                self.visit_expr(v);
                self.visit_expr(&a.target);
                self.assigned(&a.target, Some(v));
            }
            // `x: int` binds nothing; `obj.x: int` still evaluates `obj`.
            (None, Expr::Name(_)) => {}
            (None, t) => self.visit_expr(t),
        }
        if evaluates_annotation {
            self.visit_expr(&a.annotation);
        }
    }

    /// `x += ...`: a read, a bind, and a change in place.
    fn aug_assign(&mut self, a: &ast::StmtAugAssign) {
        if let Expr::Name(n) = &*a.target {
            let at = self.at(n.start());
            self.read(&n.id, at);
            self.visit_expr(&a.value);
            self.bind(&n.id, at);
            // `x += [1]` extends a list in place: whoever shares it sees the change.
            self.changed(&n.id, at);
        } else {
            self.visit_expr(&a.target);
            self.visit_expr(&a.value);
            self.assigned(&a.target, None);
        }
    }

    /// `try`: its blocks, and each handler's `as` name, bound and then deleted.
    fn try_stmt(&mut self, t: &ast::StmtTry) {
        self.stmts(&t.body);
        for h in &t.handlers {
            let ast::ExceptHandler::ExceptHandler(h) = h;
            if let Some(e) = &h.type_ {
                self.visit_expr(e);
            }
            let name = h
                .name
                .as_ref()
                .map(|n| (n.id.to_string(), self.at(n.start())));
            if let Some((n, at)) = &name {
                self.bind(n, *at);
            }
            self.stmts(&h.body);
            // Python deletes the name when the handler ends.
            if let Some((n, _)) = &name
                && self
                    .scopes
                    .last()
                    .is_some_and(|s| s.kind == ScopeKind::Module)
            {
                self.next_seq();
                self.facts.deleted.insert(n.clone());
            }
        }
        self.stmts(&t.orelse);
        self.stmts(&t.finalbody);
    }

    /// `import a.b as c`: the names bound, and the modules they stand for.
    fn import(&mut self, i: &ast::StmtImport) {
        for alias in &i.names {
            let at = self.at(alias.start());
            let name = import_binding(alias);
            let module = if alias.asname.is_some() {
                alias.name.id.to_string()
            } else {
                name.to_owned()
            };
            self.facts.imports.insert(name.to_owned(), module);
            self.bind(name, at);
        }
    }

    /// `from m import x`: the names bound; `*` is a dynamic use.
    fn import_from(&mut self, i: &ast::StmtImportFrom) {
        for alias in &i.names {
            let at = self.at(alias.start());
            if alias.name.id.as_str() == "*" {
                let module = format!(
                    "{}{}",
                    ".".repeat(i.level as usize),
                    i.module.as_ref().map_or("", |m| m.id.as_str())
                );
                self.dynamic(DynamicKind::WildcardImport { module }, at);
            } else {
                let name = alias.asname.as_ref().unwrap_or(&alias.name);
                if i.level == 0
                    && let Some(m) = &i.module
                {
                    self.facts
                        .imports
                        .insert(name.id.to_string(), format!("{}.{}", m.id, alias.name.id));
                }
                self.bind(&name.id, at);
            }
        }
    }

    // ---- effects: in-place changes, sharing, process state -----------------

    /// Whether `name`, read here, is a module (or a name imported from one): changing
    /// its attributes is process state, not a change of a notebook value.
    fn is_import(&self, name: &str) -> bool {
        self.facts.imports.contains_key(name)
    }

    /// `path` with its first name replaced by what it was imported as
    /// (`np.random.seed` → `numpy.random.seed`); None when the first name is not an
    /// import.
    fn resolve(&self, path: &[&str]) -> Option<Vec<String>> {
        let first = path.first()?;
        let module = self.facts.imports.get(*first)?;
        let mut out: Vec<String> = module.split('.').map(str::to_owned).collect();
        out.extend(path[1..].iter().map(|p| (*p).to_owned()));
        Some(out)
    }

    fn state(&mut self, kind: StateKind, what: String, at: Location) {
        let record = StateUse { kind, what, at };
        match (self.target, &mut self.acc) {
            (Target::Function, Some(acc)) => acc.state.push(record),
            _ => self.facts.state.push(record),
        }
    }

    /// The object `name` refers to may change in place here.
    fn changed(&mut self, name: &str, at: Location) {
        if self.is_import(name) && self.is_global(name) {
            return;
        }
        if self.is_global(name) {
            match (self.target, &mut self.acc) {
                (Target::Function, Some(acc)) => {
                    acc.global_mutates.insert(name.to_owned());
                }
                _ => {
                    let seq = self.next_seq();
                    self.facts
                        .mutated
                        .entry(name.to_owned())
                        .or_default()
                        .push(Occurrence { seq, at });
                }
            }
            return;
        }
        // A local of the function being defined: its parameters, and the globals or
        // parameters it may share objects with, change with it.
        let Some(acc) = &mut self.acc else { return };
        let mut roots: Vec<String> = vec![name.to_owned()];
        let mut seen: BTreeSet<String> = BTreeSet::new();
        while let Some(n) = roots.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if acc.params.contains(&n) {
                acc.mutated_params.insert(n.clone());
            }
            if let Some(more) = self.local_alias.get(&n) {
                roots.extend(more.iter().cloned());
            }
        }
        for n in seen {
            if n != name && !acc.params.contains(&n) && !self.local_alias.contains_key(&n) {
                acc.global_mutates.insert(n);
            }
        }
    }

    /// After `target = value` (value None for augmented assignments and `del`): what the
    /// assignment changes in place, what the bound names may share, process state.
    fn assigned(&mut self, target: &Expr, value: Option<&Expr>) {
        match target {
            Expr::Name(n) => {
                if let Some(v) = value {
                    self.shares_with(target, v);
                    self.unsaveable_binding(&n.id, v);
                }
            }
            Expr::Tuple(t) => t.elts.iter().for_each(|e| self.assigned(e, value)),
            Expr::List(l) => l.elts.iter().for_each(|e| self.assigned(e, value)),
            Expr::Starred(s) => self.assigned(&s.value, value),
            Expr::Attribute(_) | Expr::Subscript(_) => {
                let at = self.at(target.start());
                let (chain, subscripted) = match target {
                    Expr::Subscript(s) => (&*s.value, true),
                    _ => (target, false),
                };
                if let Some(path) = effects::dotted(chain)
                    && let Some(resolved) = self.resolve(&path)
                {
                    let refs: Vec<&str> = resolved.iter().map(String::as_str).collect();
                    if let Some(kind) = effects::state_of_target(&refs, subscripted) {
                        let what = format!(
                            "{}{}",
                            resolved.join("."),
                            if subscripted { "[...]" } else { "" }
                        );
                        self.state(kind, what, at);
                    }
                    return;
                }
                // `getcontext().prec = 50`
                if let Expr::Attribute(a) = target
                    && let Expr::Call(c) = &*a.value
                    && let Some(path) = effects::dotted(&c.func)
                    && let Some(resolved) = self.resolve(&path)
                    && resolved.join(".") == "decimal.getcontext"
                {
                    self.state(StateKind::Decimal, "decimal.getcontext()".into(), at);
                    return;
                }
                if let Some(root) = effects::root_name(target) {
                    let root = root.to_owned();
                    self.changed(&root, at);
                    if let Some(v) = value {
                        self.stores_into(&root, v, at);
                    }
                }
            }
            _ => {}
        }
    }

    /// `target` (names, tuples of names) may hold objects of what `value` refers to.
    fn shares_with(&mut self, target: &Expr, value: &Expr) {
        let sources = value_sources(value);
        // An instance holds its class (`acc = Acc()`): a class the steps define travels
        // by value, so the two must travel together to stay one class.
        let mut names = Vec::new();
        collect_target_names(target, &mut names);
        for name in names {
            let at = self.at(target.start());
            let mut src = sources.clone();
            src.remove(&name);
            src.retain(|s| !self.is_import(s));
            // Every module-level binding is recorded, with no sources too: a rebinding
            // ends what the name shared before.
            if self.is_global(&name) && self.target == Target::Module {
                self.facts.shares.push(Share {
                    target: name,
                    sources: src,
                    at,
                    joins: false,
                });
            } else if self.acc.is_some() && !self.is_global(&name) && !src.is_empty() {
                self.local_alias.entry(name).or_default().extend(src);
            }
        }
    }

    /// `root.attr = value`, `root[k] = value`, `root.append(value)`: the object `root`
    /// names now also holds the objects of what `value` refers to.
    fn stores_into(&mut self, root: &str, value: &Expr, at: Location) {
        if self.target != Target::Module || !self.is_global(root) || self.is_import(root) {
            return;
        }
        let mut sources = value_sources(value);
        sources.remove(root);
        sources.retain(|s| !self.is_import(s));
        if sources.is_empty() {
            return;
        }
        self.facts.shares.push(Share {
            target: root.to_owned(),
            sources,
            at,
            joins: true,
        });
    }

    /// Module-level `name = <value that cannot leave the process>`.
    fn unsaveable_binding(&mut self, name: &str, value: &Expr) {
        if self.target != Target::Module || !self.at_module_level() {
            return;
        }
        let kind = match value {
            Expr::Generator(_) => Some(UnsaveableKind::Generator),
            Expr::Call(c) => effects::dotted(&c.func).and_then(|path| {
                let resolved = self
                    .resolve(&path)
                    .unwrap_or_else(|| path.iter().map(|p| (*p).to_owned()).collect());
                match resolved.join(".").as_str() {
                    "open" | "io.open" | "builtins.open" | "codecs.open" | "gzip.open"
                    | "bz2.open" => Some(UnsaveableKind::OpenFile),
                    "threading.Thread" | "multiprocessing.Process" => Some(UnsaveableKind::Thread),
                    "threading.Lock" | "threading.RLock" | "multiprocessing.Lock" => {
                        Some(UnsaveableKind::Lock)
                    }
                    "socket.socket" | "socket.create_connection" => Some(UnsaveableKind::Socket),
                    _ => None,
                }
            }),
            _ => None,
        };
        if let Some(kind) = kind {
            let at = self.at(value.start());
            self.facts.unsaveable.push(Unsaveable {
                name: name.to_owned(),
                kind,
                at,
            });
        }
    }

    /// What a call changes: its receiver (`x.append(1)`), arguments known to be changed
    /// (`random.shuffle(x)`, `out=x`), process state (`np.random.seed(0)`); calls of plain
    /// names are recorded for the data-flow analysis.
    fn call(&mut self, call: &ast::ExprCall, bound_to: Option<&str>) {
        let at = self.at(call.func.start());
        let inplace = call.arguments.keywords.iter().any(|k| {
            k.arg.as_ref().is_some_and(|a| a.id.as_str() == "inplace")
                && matches!(&k.value, Expr::BooleanLiteral(b) if b.value)
        });
        for k in &call.arguments.keywords {
            if k.arg.as_ref().is_some_and(|a| a.id.as_str() == "out")
                && let Some(root) = effects::root_name(&k.value)
            {
                let root = root.to_owned();
                self.changed(&root, at);
            }
        }
        let first_arg_root = call
            .arguments
            .args
            .first()
            .and_then(effects::root_name)
            .map(str::to_owned);
        match &*call.func {
            Expr::Attribute(a) => self.attribute_call(call, a, at, inplace, first_arg_root),
            Expr::Name(f) => self.name_call(call, f, bound_to, at, first_arg_root),
            _ => {}
        }
    }

    /// A method's call (`x.append(1)`) or a module's function's (`np.random.seed(0)`).
    fn attribute_call(
        &mut self,
        call: &ast::ExprCall,
        a: &ast::ExprAttribute,
        at: Location,
        inplace: bool,
        first_arg_root: Option<String>,
    ) {
        let method = a.attr.id.as_str();
        let path = effects::dotted(&call.func);
        let resolved = path.as_deref().and_then(|p| self.resolve(p));
        if let Some(resolved) = resolved {
            // A module's function (`np.random.seed`, `os.chdir`, `random.shuffle`).
            let refs: Vec<&str> = resolved.iter().map(String::as_str).collect();
            if let Some(kind) = effects::state_of_call(&refs) {
                self.state(kind, resolved.join("."), at);
            }
            if effects::changes_first_argument(method)
                && let Some(root) = first_arg_root
            {
                self.changed(&root, at);
            }
            if let Some(path) = &path
                && path.len() >= 3
                && !effects::is_pure_method(method)
                && self.target == Target::Module
            {
                let module = self.facts.imports.get(path[0]).cloned().unwrap_or_default();
                let use_ = StateUse {
                    kind: StateKind::Unknown,
                    what: path.join("."),
                    at,
                };
                self.facts.module_calls.push((module, use_));
            }
            return;
        }
        if let Some(root) = effects::root_name(&a.value) {
            let root = root.to_owned();
            if let Some(kind) = self.state_handle(&root) {
                self.state(kind, format!("{root}.{method}"), at);
                return;
            }
            if !effects::is_pure_method(method) || inplace {
                self.changed(&root, at);
            }
            if effects::stores_arguments(method) {
                let values = call
                    .arguments
                    .args
                    .iter()
                    .chain(call.arguments.keywords.iter().map(|k| &k.value));
                for v in values {
                    self.stores_into(&root, v, at);
                }
            }
        } else if let Expr::Call(inner) = &*a.value
            && let Some(path) = effects::dotted(&inner.func)
            && let Some(resolved) = self.resolve(&path)
        {
            // `logging.getLogger().setLevel(...)`, `decimal.getcontext().clear_flags()`
            let mut refs: Vec<String> = resolved;
            refs.push(method.to_owned());
            let joined = refs.join(".");
            if joined.starts_with("decimal.getcontext.") {
                self.state(StateKind::Decimal, joined, at);
            } else {
                let r: Vec<&str> = refs.iter().map(String::as_str).collect();
                if let Some(kind) = effects::state_of_call(&r) {
                    self.state(kind, joined, at);
                }
            }
        }
        if effects::changes_first_argument(method)
            && let Some(root) = first_arg_root
        {
            self.changed(&root, at);
        }
    }

    /// A call of a plain name: an imported function's, a builtin's, or one the data-flow
    /// analysis resolves (recorded with the roots of its arguments).
    fn name_call(
        &mut self,
        call: &ast::ExprCall,
        f: &ast::ExprName,
        bound_to: Option<&str>,
        at: Location,
        first_arg_root: Option<String>,
    ) {
        let name = f.id.as_str();
        if let Some(resolved) = self.resolve(&[name]) {
            // `from random import shuffle`, `from os import chdir`
            let refs: Vec<&str> = resolved.iter().map(String::as_str).collect();
            if let Some(kind) = effects::state_of_call(&refs) {
                self.state(kind, resolved.join("."), at);
            }
            if effects::changes_first_argument(name)
                && let Some(root) = first_arg_root
            {
                self.changed(&root, at);
            }
            return;
        }
        if is_builtin(name) && !self.facts.first_bind.contains_key(name) {
            if effects::builtin_changes(name)
                && let Some(root) = first_arg_root
            {
                self.changed(&root, at);
            }
            return;
        }
        let args: Vec<Option<String>> = call
            .arguments
            .args
            .iter()
            .map(|a| effects::root_name(a).map(str::to_owned))
            .collect();
        let keywords: Vec<(String, String)> = call
            .arguments
            .keywords
            .iter()
            .filter_map(|k| {
                Some((
                    k.arg.as_ref()?.id.to_string(),
                    effects::root_name(&k.value)?.to_owned(),
                ))
            })
            .collect();
        match (self.target, self.acc.is_some()) {
            (Target::Function, true) => {
                // Inside a definition the callee is resolved later, by the step
                // that calls the definition (`pipeline::dataflow`): what the
                // callee changes of its parameters, the caller passed.
                let args: Vec<Vec<String>> = args
                    .iter()
                    .map(|a| a.as_deref().map(|n| self.roots_of(n)).unwrap_or_default())
                    .collect();
                let keywords: Vec<(String, Vec<String>)> = keywords
                    .iter()
                    .map(|(k, v)| (k.clone(), self.roots_of(v)))
                    .collect();
                if let Some(acc) = &mut self.acc {
                    acc.calls.push(InnerCall {
                        callee: name.to_owned(),
                        args,
                        keywords,
                    });
                }
            }
            _ => self.facts.calls.push(CallFact {
                callee: name.to_owned(),
                args,
                keywords,
                bound_to: bound_to.map(str::to_owned),
                at,
            }),
        }
    }

    /// What a name inside the definition being walked may refer to, as far as its
    /// caller can tell: its parameters and the globals it may share objects with.
    fn roots_of(&self, name: &str) -> Vec<String> {
        if self.is_global(name) {
            return vec![name.to_owned()];
        }
        let Some(acc) = &self.acc else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut work = vec![name.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(n) = work.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if acc.params.contains(&n) {
                out.push(n.clone());
            } else if n != name && !self.local_alias.contains_key(&n) {
                out.push(n.clone());
            }
            if let Some(more) = self.local_alias.get(&n) {
                work.extend(more.iter().cloned());
            }
        }
        out
    }

    /// A name bound to an object that is process state (`ctx = decimal.getcontext()`,
    /// `env = os.environ`).
    fn state_handle(&self, name: &str) -> Option<StateKind> {
        let resolved = self.resolve(&[name])?;
        match resolved.join(".").as_str() {
            "os.environ" => Some(StateKind::Environment),
            "matplotlib.rcParams" | "matplotlib.pyplot.rcParams" => Some(StateKind::Matplotlib),
            _ => None,
        }
    }

    // ---- IPython escapes --------------------------------------------------

    fn escape(&mut self, kind: IpyEscapeKind, range: TextRange) {
        let start = self.base + range.start().to_usize();
        let text = self.text(range).to_owned();
        let at = self.at_abs(start);
        // The escape prefix (`%`, `!!`, `?`...) is ASCII; help escapes may
        // also end with `?`/`??`.
        let prefix_len = text.len()
            - text
                .trim_start_matches(['%', '!', '?', ',', ';', '/'])
                .len();
        let body = &text[prefix_len..];
        let body_at = start + prefix_len;
        let (word, rest, rest_off) = ipython::first_word(body);
        let word = word.to_owned();
        let push = |a: &mut Self, kind, name: &str| {
            a.facts.ipython.push(IpythonUse {
                kind,
                name: name.to_owned(),
                text: text.clone(),
                at,
            });
        };
        match kind {
            IpyEscapeKind::Magic => {
                push(self, IpythonKind::LineMagic, &word);
                let rest_at = body_at + rest_off;
                if let Some((code, off)) = ipython::python_argument(&word, rest) {
                    let s = rest_at + off;
                    self.walk_text(s, s + code.len(), Mode::Ipython, true);
                } else if word == "store" {
                    self.store_magic(rest, rest_at);
                }
            }
            IpyEscapeKind::Magic2 => {
                push(self, IpythonKind::CellMagic, &word);
                self.facts.syntax_errors.push(SyntaxIssue {
                    message: format!(
                        "cell magic `%%{word}` is only valid on the first line of a cell"
                    ),
                    at,
                });
            }
            IpyEscapeKind::Shell | IpyEscapeKind::ShCap => {
                // The parser reports `x = !!cmd` as a plain shell escape.
                let k = if kind == IpyEscapeKind::ShCap || text.starts_with("!!") {
                    IpythonKind::ShellCapture
                } else {
                    IpythonKind::Shell
                };
                push(self, k, &word);
                for i in ipython::shell_interpolations(body) {
                    match i {
                        Interpolation::Name(n, off) => {
                            let loc = self.at_abs(body_at + off);
                            self.read(n, loc);
                        }
                        Interpolation::Expr(e, off) => {
                            let s = body_at + off;
                            self.walk_text(s, s + e.len(), Mode::Expression, false);
                        }
                    }
                }
            }
            IpyEscapeKind::Help | IpyEscapeKind::Help2 => push(self, IpythonKind::Help, ""),
            IpyEscapeKind::Quote | IpyEscapeKind::Quote2 | IpyEscapeKind::Paren => {
                let callee = word.split('.').next().unwrap_or_default().to_owned();
                push(self, IpythonKind::AutoCall, &callee);
                if !callee.is_empty() {
                    self.read(&callee, self.at_abs(body_at));
                }
            }
        }
    }

    /// `%store x` reads `x`; `%store -r x y` restores (binds) them.
    fn store_magic(&mut self, args: &str, args_at: usize) {
        let words: Vec<&str> = args.split_whitespace().collect();
        let restore = words.first() == Some(&"-r");
        if words.iter().any(|w| *w == "-d" || *w == "-z") || (restore && words.len() == 1) {
            return;
        }
        let mut off = 0;
        for w in words {
            let pos = args[off..].find(w).map_or(off, |p| off + p);
            off = pos + w.len();
            if w.starts_with('-') || w.starts_with('>') {
                if w.starts_with('>') {
                    break;
                }
                continue;
            }
            if !w.chars().all(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let at = self.at_abs(args_at + pos);
            if restore {
                self.bind(w, at);
            } else {
                self.read(w, at);
            }
        }
    }
}

impl<'a> Visitor<'a> for Analyzer<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        self.stmt(stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            // The parser's recovery from a syntax error leaves empty names where an
            // expression was missing (`x = 0x`); the error is reported, the name is not.
            Expr::Name(n) if n.id.is_empty() => {}
            Expr::Name(n) => {
                let at = self.at(n.start());
                match n.ctx {
                    ExprContext::Load | ExprContext::Invalid => self.read(&n.id, at),
                    ExprContext::Store => self.bind(&n.id, at),
                    ExprContext::Del => self.delete(&n.id, at),
                }
            }
            Expr::Named(n) => {
                self.visit_expr(&n.value);
                if let Expr::Name(t) = &*n.target {
                    let at = self.at(t.start());
                    self.bind_walrus(&t.id, at);
                }
            }
            Expr::Lambda(l) => self.lambda(l),
            Expr::ListComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::SetComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::Generator(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::DictComp(c) => {
                let mut elts: Vec<&Expr> = c.key.as_deref().into_iter().collect();
                elts.push(&c.value);
                self.comprehension(&c.generators, &elts);
            }
            Expr::Call(call) => {
                if let Expr::Name(f) = &*call.func {
                    let no_args =
                        call.arguments.args.is_empty() && call.arguments.keywords.is_empty();
                    let kind = match f.id.as_str() {
                        "exec" => Some(DynamicKind::Exec),
                        "eval" => Some(DynamicKind::Eval),
                        "globals" => Some(DynamicKind::Globals),
                        "locals" => Some(DynamicKind::Locals),
                        "vars" if no_args => Some(DynamicKind::Vars),
                        _ => None,
                    };
                    if let Some(kind) = kind
                        && self.is_global(&f.id)
                    {
                        let at = self.at(f.start());
                        self.dynamic(kind, at);
                    }
                }
                visitor::walk_expr(self, expr);
                self.call(call, None);
            }
            Expr::Yield(_) | Expr::YieldFrom(_) => {
                if self.target == Target::Function
                    && let Some(acc) = &mut self.acc
                {
                    acc.is_generator = true;
                }
                visitor::walk_expr(self, expr);
            }
            Expr::IpyEscapeCommand(c) => self.escape(c.kind, c.range),
            _ => visitor::walk_expr(self, expr),
        }
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        visitor::walk_pattern(self, pattern);
        let name = match pattern {
            Pattern::MatchAs(p) => p.name.as_ref(),
            Pattern::MatchStar(p) => p.name.as_ref(),
            Pattern::MatchMapping(p) => p.rest.as_ref(),
            _ => None,
        };
        if let Some(n) = name {
            let at = self.at(n.start());
            self.bind(&n.id, at);
        }
    }
}

fn positional_params(p: Option<&Parameters>) -> Vec<String> {
    p.map(|p| {
        p.posonlyargs
            .iter()
            .chain(&p.args)
            .map(|a| a.parameter.name.id.to_string())
            .chain(p.vararg.iter().map(|v| v.name.id.to_string()))
            .chain(p.kwonlyargs.iter().map(|a| a.parameter.name.id.to_string()))
            .chain(p.kwarg.iter().map(|v| v.name.id.to_string()))
            .collect()
    })
    .unwrap_or_default()
}

/// The names whose objects the value of `value` may hold. A plain-named callee may be
/// the user's function returning its argument; the data-flow analysis decides once it
/// knows the callee (see `CallFact`), so the callee and its arguments count.
fn value_sources(value: &Expr) -> BTreeSet<String> {
    let mut sources = BTreeSet::new();
    let mut calls = Vec::new();
    effects::share_sources(value, &mut sources, &mut calls);
    for c in calls {
        if let Expr::Name(f) = &*c.func {
            sources.insert(f.id.to_string());
        }
        for a in c.arguments.args.iter() {
            let mut calls2 = Vec::new();
            effects::share_sources(a, &mut sources, &mut calls2);
        }
    }
    sources
}

fn collect_target_names(target: &Expr, out: &mut Vec<String>) {
    match target {
        Expr::Name(n) => out.push(n.id.to_string()),
        Expr::Tuple(t) => t.elts.iter().for_each(|e| collect_target_names(e, out)),
        Expr::List(l) => l.elts.iter().for_each(|e| collect_target_names(e, out)),
        Expr::Starred(s) => collect_target_names(&s.value, out),
        _ => {}
    }
}
