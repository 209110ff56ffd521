//! Python's scoping rules, as far as name resolution needs them.

use std::collections::HashSet;

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, ExprContext, Parameters, Pattern, Stmt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    Module,
    /// Class bodies resolve flow-sensitively (`LOAD_NAME`) and are invisible
    /// to the scopes nested in them.
    Class,
    Function,
    Lambda,
    Comprehension,
    /// PEP 695 annotation scope holding `[T, ...]`.
    TypeParams,
}

#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) kind: ScopeKind,
    /// For function-like scopes: every name bound anywhere in the scope
    /// (Python decides locality at compile time). For classes: names bound so
    /// far in the body.
    pub(crate) locals: HashSet<String>,
    pub(crate) globals: HashSet<String>,
    pub(crate) nonlocals: HashSet<String>,
}

impl Scope {
    pub(crate) fn new(kind: ScopeKind) -> Self {
        Self {
            kind,
            locals: HashSet::new(),
            globals: HashSet::new(),
            nonlocals: HashSet::new(),
        }
    }

    pub(crate) fn function(parameters: Option<&Parameters>, body: &[Stmt]) -> Self {
        let mut c = Collector::default();
        if let Some(p) = parameters {
            c.locals.extend(parameter_names(p));
        }
        for stmt in body {
            c.visit_stmt(stmt);
        }
        c.into_scope(ScopeKind::Function)
    }

    pub(crate) fn lambda(parameters: Option<&Parameters>, body: &Expr) -> Self {
        let mut c = Collector::default();
        if let Some(p) = parameters {
            c.locals.extend(parameter_names(p));
        }
        c.visit_expr(body);
        c.into_scope(ScopeKind::Lambda)
    }

    pub(crate) fn comprehension(generators: &[ast::Comprehension]) -> Self {
        let mut c = Collector::default();
        for g in generators {
            c.visit_expr(&g.target);
        }
        let mut scope = Scope::new(ScopeKind::Comprehension);
        scope.locals = c.locals;
        scope
    }

    pub(crate) fn type_params(params: &ast::TypeParams) -> Self {
        let mut scope = Scope::new(ScopeKind::TypeParams);
        for p in &params.type_params {
            let name = match p {
                ast::TypeParam::TypeVar(t) => &t.name,
                ast::TypeParam::TypeVarTuple(t) => &t.name,
                ast::TypeParam::ParamSpec(t) => &t.name,
            };
            scope.locals.insert(name.id.to_string());
        }
        scope
    }
}

pub(crate) fn parameter_names(p: &Parameters) -> impl Iterator<Item = String> + '_ {
    p.posonlyargs
        .iter()
        .chain(&p.args)
        .chain(&p.kwonlyargs)
        .map(|p| &p.parameter)
        .chain(p.vararg.as_deref())
        .chain(p.kwarg.as_deref())
        .map(|p| p.name.id.to_string())
}

/// Finds the names a function-like scope binds, without entering nested
/// scopes, except that walrus targets inside comprehensions belong here.
#[derive(Default)]
struct Collector {
    locals: HashSet<String>,
    globals: HashSet<String>,
    nonlocals: HashSet<String>,
    in_comprehension: u32,
}

impl Collector {
    fn into_scope(self, kind: ScopeKind) -> Scope {
        let mut locals = self.locals;
        locals.retain(|n| !self.globals.contains(n) && !self.nonlocals.contains(n));
        Scope {
            kind,
            locals,
            globals: self.globals,
            nonlocals: self.nonlocals,
        }
    }

    fn add(&mut self, name: &str) {
        self.locals.insert(name.to_owned());
    }

    fn comprehension(&mut self, generators: &[ast::Comprehension], elts: &[&Expr]) {
        self.in_comprehension += 1;
        for g in generators {
            self.visit_expr(&g.iter);
            self.visit_expr(&g.target);
            for e in &g.ifs {
                self.visit_expr(e);
            }
        }
        for e in elts {
            self.visit_expr(e);
        }
        self.in_comprehension -= 1;
    }

    /// What a nested def/lambda evaluates in *this* scope: walrus targets in
    /// defaults, decorators or annotations bind here.
    fn parameter_exprs(&mut self, p: &Parameters) {
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
}

impl<'a> Visitor<'a> for Collector {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => {
                self.add(&f.name.id);
                for d in &f.decorator_list {
                    self.visit_expr(&d.expression);
                }
                self.parameter_exprs(&f.parameters);
            }
            Stmt::ClassDef(c) => {
                self.add(&c.name.id);
                for d in &c.decorator_list {
                    self.visit_expr(&d.expression);
                }
                if let Some(args) = &c.arguments {
                    self.visit_arguments(args);
                }
            }
            Stmt::Global(g) => self
                .globals
                .extend(g.names.iter().map(|n| n.id.to_string())),
            Stmt::Nonlocal(g) => self
                .nonlocals
                .extend(g.names.iter().map(|n| n.id.to_string())),
            Stmt::Import(i) => {
                for a in &i.names {
                    self.add(import_binding(a));
                }
            }
            Stmt::ImportFrom(i) => {
                for a in &i.names {
                    if a.name.id.as_str() != "*" {
                        self.add(a.asname.as_ref().unwrap_or(&a.name).id.as_str());
                    }
                }
            }
            Stmt::Try(t) => {
                for h in &t.handlers {
                    let ast::ExceptHandler::ExceptHandler(h) = h;
                    if let Some(n) = &h.name {
                        self.add(&n.id);
                    }
                }
                visitor::walk_stmt(self, stmt);
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(n) => {
                if self.in_comprehension == 0 && !matches!(n.ctx, ExprContext::Load) {
                    self.add(&n.id);
                }
            }
            Expr::Named(n) => {
                if let Expr::Name(t) = &*n.target {
                    self.add(&t.id);
                }
                self.visit_expr(&n.value);
            }
            Expr::Lambda(l) => {
                if let Some(p) = &l.parameters {
                    self.parameter_exprs(p);
                }
            }
            Expr::ListComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::SetComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::Generator(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::DictComp(c) => {
                let mut elts = vec![&*c.value];
                elts.extend(c.key.as_deref());
                self.comprehension(&c.generators, &elts);
            }
            _ => visitor::walk_expr(self, expr),
        }
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        match pattern {
            Pattern::MatchAs(p) => {
                if let Some(n) = &p.name {
                    self.add(&n.id);
                }
            }
            Pattern::MatchStar(p) => {
                if let Some(n) = &p.name {
                    self.add(&n.id);
                }
            }
            Pattern::MatchMapping(p) => {
                if let Some(n) = &p.rest {
                    self.add(&n.id);
                }
            }
            _ => {}
        }
        visitor::walk_pattern(self, pattern);
    }
}

/// `import a.b.c` binds `a`; `import a.b as c` binds `c`.
pub(crate) fn import_binding(alias: &ast::Alias) -> &str {
    match &alias.asname {
        Some(a) => a.id.as_str(),
        None => alias.name.id.as_str().split('.').next().unwrap_or_default(),
    }
}
