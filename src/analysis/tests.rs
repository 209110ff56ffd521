use super::*;

fn block(cells: &[&str]) -> BlockFacts {
    let cells: Vec<CellSource> = cells
        .iter()
        .enumerate()
        .map(|(i, s)| CellSource {
            number: i + 1,
            source: s,
        })
        .collect();
    analyze_block(&cells)
}

fn one(src: &str) -> BlockFacts {
    block(&[src])
}

fn reads(f: &BlockFacts) -> Vec<&str> {
    f.first_read.keys().map(String::as_str).collect()
}

fn binds(f: &BlockFacts) -> Vec<&str> {
    f.first_bind.keys().map(String::as_str).collect()
}

fn func<'a>(f: &'a BlockFacts, name: &str) -> &'a FunctionFacts {
    f.functions
        .get(name)
        .unwrap_or_else(|| panic!("no function {name}: {:?}", f.functions))
}

fn freads<'a>(f: &'a BlockFacts, name: &str) -> Vec<&'a str> {
    func(f, name)
        .global_reads
        .iter()
        .map(String::as_str)
        .collect()
}

fn fwrites<'a>(f: &'a BlockFacts, name: &str) -> Vec<&'a str> {
    func(f, name)
        .global_writes
        .iter()
        .map(String::as_str)
        .collect()
}

/// Read happens before the first binding: the name must come from outside.
fn needs(f: &BlockFacts, name: &str) -> bool {
    match (f.first_read.get(name), f.first_bind.get(name)) {
        (Some(r), Some(b)) => r.seq < b.seq,
        (Some(_), None) => true,
        _ => false,
    }
}

fn loc(cell: usize, line: u32, col: u32) -> Location {
    Location { cell, line, col }
}

fn no_errors(f: &BlockFacts) {
    assert!(f.syntax_errors.is_empty(), "{:?}", f.syntax_errors);
}

// ---- assignment and evaluation order ---------------------------------------

#[test]
fn assignment_reads_rhs_before_binding() {
    let f = one("x = x + 1\ny = 2\nz = y");
    no_errors(&f);
    assert!(needs(&f, "x"));
    assert!(!needs(&f, "y"));
    assert_eq!(binds(&f), ["x", "y", "z"]);
    assert_eq!(f.first_read["x"].at, loc(1, 1, 5));
    assert_eq!(f.first_bind["z"].at, loc(1, 3, 1));
}

#[test]
fn unpacking_and_star_targets_bind() {
    let f = one("a, (b, *c) = d\n[e, f] = g\n*h, = i");
    assert_eq!(binds(&f), ["a", "b", "c", "e", "f", "h"]);
    assert_eq!(reads(&f), ["d", "g", "i"]);
}

#[test]
fn attribute_and_subscript_targets_read_the_base() {
    let f = one("df['a'] = col\nobj.x.y = 1\nm[k] += 2\ndel cache[key]");
    assert!(binds(&f).is_empty());
    assert_eq!(reads(&f), ["cache", "col", "df", "k", "key", "m", "obj"]);
}

#[test]
fn augmented_assignment_reads_then_binds() {
    let f = one("total += step");
    assert!(needs(&f, "total"));
    assert!(f.first_read["total"].seq < f.first_read["step"].seq);
    assert!(f.first_read["step"].seq < f.first_bind["total"].seq);
}

#[test]
fn annotated_assignment() {
    let f = one("x: int = y\nz: Foo\nobj.attr: int");
    assert_eq!(binds(&f), ["x"]);
    assert_eq!(reads(&f), ["Foo", "int", "obj", "y"]);
}

#[test]
fn walrus_binds_and_orders() {
    let f = one("if (n := len(data)) > 3:\n    print(n)");
    assert_eq!(binds(&f), ["n"]);
    assert!(!needs(&f, "n"));
    assert!(needs(&f, "data"));
}

#[test]
fn conditional_bindings_count() {
    let f = one("if flag:\n    a = 1\nelse:\n    b = 2\nwhile c:\n    d = 1\nelse:\n    e = 1");
    assert_eq!(binds(&f), ["a", "b", "d", "e"]);
}

#[test]
fn for_loop_iter_then_target_then_body() {
    let f = one("for i, (k, v) in items:\n    acc = i\nelse:\n    done = True");
    assert_eq!(binds(&f), ["acc", "done", "i", "k", "v"]);
    assert!(f.first_read["items"].seq < f.first_bind["i"].seq);
    assert!(!needs(&f, "i"));
}

#[test]
fn with_as_binds_after_context() {
    let f = one("with open(path) as fh, lock as (a, b):\n    text = fh.read()");
    assert_eq!(binds(&f), ["a", "b", "fh", "text"]);
    assert!(needs(&f, "path"));
    assert!(needs(&f, "lock"));
    assert!(!needs(&f, "fh"));
}

#[test]
fn except_as_is_bound_then_deleted() {
    let f = one(
        "try:\n    risky()\nexcept (ValueError, KeyError) as err:\n    log(err)\nfinally:\n    cleanup()",
    );
    assert!(f.first_bind.contains_key("err"));
    assert!(f.deleted.contains("err"));
    assert!(!needs(&f, "err"));
    assert_eq!(
        reads(&f),
        ["KeyError", "ValueError", "cleanup", "err", "log", "risky"]
    );
    let f = one("try:\n    pass\nexcept E as e:\n    pass\ne = 1");
    assert!(!f.deleted.contains("e"));
}

#[test]
fn try_star_and_else() {
    let f = one(
        "try:\n    a = 1\nexcept* OSError as eg:\n    b = eg\nelse:\n    c = 1\nfinally:\n    d = 1",
    );
    no_errors(&f);
    assert_eq!(binds(&f), ["a", "b", "c", "d", "eg"]);
}

#[test]
fn del_reads_then_deletes() {
    let f = one("x = 1\ndel x");
    assert!(f.deleted.contains("x"));
    assert!(!needs(&f, "x"));
    let f = one("del model");
    assert!(needs(&f, "model"));
    assert!(f.deleted.contains("model"));
    let f = one("del x\nx = 2");
    assert!(!f.deleted.contains("x"));
}

// ---- imports ----------------------------------------------------------------

#[test]
fn imports_all_forms() {
    let f = one(
        "import os\nimport a.b.c\nimport x.y as z\nfrom m import p, q as r\nfrom . import sib\nfrom ..pkg.mod import deep",
    );
    no_errors(&f);
    assert_eq!(binds(&f), ["a", "deep", "os", "p", "r", "sib", "z"]);
    assert!(f.first_read.is_empty());
    assert!(f.dynamic.is_empty());
}

#[test]
fn wildcard_import_is_dynamic() {
    let f = one("from numpy import *\nfrom ..rel import *");
    let kinds: Vec<_> = f.dynamic.iter().map(|d| d.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            DynamicKind::WildcardImport {
                module: "numpy".into()
            },
            DynamicKind::WildcardImport {
                module: "..rel".into()
            }
        ]
    );
    assert_eq!(f.dynamic[0].at, loc(1, 1, 19));
}

// ---- comprehensions ---------------------------------------------------------

#[test]
fn comprehension_variables_do_not_leak() {
    let f = one(
        "ys = [x * k for x in xs if x > lim]\nd = {a: b for a, b in pairs}\ng = (i for i in range(n) for j in other(i))",
    );
    assert_eq!(binds(&f), ["d", "g", "ys"]);
    for n in ["x", "a", "b", "i", "j"] {
        assert!(!f.first_read.contains_key(n), "{n} leaked");
        assert!(!f.first_bind.contains_key(n), "{n} leaked");
    }
    assert_eq!(
        reads(&f),
        ["k", "lim", "n", "other", "pairs", "range", "xs"]
    );
}

#[test]
fn comprehension_free_names_shadowed_by_a_later_target_still_global() {
    // The first iterable is evaluated outside: `x` here is the global.
    let f = one("r = [x for x in x]");
    assert!(needs(&f, "x"));
}

#[test]
fn walrus_in_comprehension_leaks_to_enclosing_scope() {
    let f = one("vals = [last := v for v in seq]\nprint(last)");
    assert_eq!(binds(&f), ["last", "vals"]);
    assert!(!needs(&f, "last"));
    let f = one("def f(seq):\n    [last := v for v in seq]\n    return last\n");
    assert!(freads(&f, "f").is_empty());
}

// ---- functions ---------------------------------------------------------------

#[test]
fn function_facts_locals_params_globals() {
    let src = "\
def train(data, epochs=default_epochs, *args, lr: Float = 0.1, **kw) -> Result:
    model = build(data)
    for e in range(epochs):
        model.step(lr, scale)
    helper()
    print(len(data))
    return model
";
    let f = one(src);
    no_errors(&f);
    assert_eq!(freads(&f, "train"), ["build", "helper", "scale"]);
    // Defaults and annotations are evaluated at def time.
    assert_eq!(reads(&f), ["Float", "Result", "default_epochs"]);
    assert_eq!(binds(&f), ["train"]);
    assert_eq!(func(&f, "train").defined_at, loc(1, 1, 5));
}

#[test]
fn local_anywhere_in_function_is_local() {
    let f = one("def f():\n    print(x)\n    x = 1\n");
    assert!(freads(&f, "f").is_empty());
}

#[test]
fn global_declaration_reads_and_writes() {
    let f = one(
        "def bump():\n    global counter, seen\n    counter += 1\n    del seen\n    return limit\n",
    );
    assert_eq!(freads(&f, "bump"), ["counter", "limit", "seen"]);
    assert_eq!(fwrites(&f, "bump"), ["counter", "seen"]);
    assert!(f.first_bind.keys().all(|k| k == "bump"));
}

#[test]
fn global_at_module_level_is_a_no_op() {
    let f = one("global x\nx = 1");
    assert_eq!(binds(&f), ["x"]);
}

#[test]
fn nonlocal_and_nested_functions() {
    let src = "\
def outer():
    count = 0
    def inner():
        nonlocal count
        count += step
        return other()
    return inner
";
    let f = one(src);
    assert_eq!(freads(&f, "outer"), ["other", "step"]);
    assert!(!f.functions.contains_key("inner"));
}

#[test]
fn builtins_excluded_from_function_reads_unless_shadowed() {
    let f = one("def f():\n    return len(x), print\n");
    assert_eq!(freads(&f, "f"), ["x"]);
    let f = one("def len(v):\n    return 0\ndef f():\n    return len(x)\n");
    assert_eq!(freads(&f, "f"), ["len", "x"]);
}

#[test]
fn last_definition_wins() {
    let f = one("def f():\n    return a\n");
    let f2 = block(&["def f():\n    return a\n", "def f():\n    return b\n"]);
    assert_eq!(freads(&f, "f"), ["a"]);
    assert_eq!(freads(&f2, "f"), ["b"]);
    assert_eq!(func(&f2, "f").defined_at.cell, 2);
}

#[test]
fn async_constructs() {
    let src = "\
async def fetch(url):
    async with session.get(url) as resp:
        async for chunk in resp.content:
            await sink(chunk)
    return [x async for x in stream()]
";
    let f = one(src);
    no_errors(&f);
    assert_eq!(freads(&f, "fetch"), ["session", "sink", "stream"]);
    // Top-level await is valid in IPython.
    let f = one("result = await fetch(u)");
    no_errors(&f);
    assert_eq!(reads(&f), ["fetch", "u"]);
}

#[test]
fn decorators_are_module_reads() {
    let f = one("@app.route(path)\n@cache\ndef view():\n    return render()\n");
    assert_eq!(reads(&f), ["app", "cache", "path"]);
    assert_eq!(freads(&f, "view"), ["render"]);
}

#[test]
fn type_params_are_local() {
    let f = one(
        "def first[T: Bound](xs: list[T]) -> T:\n    return xs[0]\ntype Pair[K] = tuple[K, Other]\n",
    );
    no_errors(&f);
    assert_eq!(reads(&f), ["Bound", "Other", "list", "tuple"]);
    assert_eq!(binds(&f), ["Pair", "first"]);
}

#[test]
fn annotations_inside_functions_are_not_evaluated() {
    let f = one("def f():\n    y: Foo = 1\n    return y\n");
    assert!(freads(&f, "f").is_empty());
}

// ---- lambdas ---------------------------------------------------------------------

#[test]
fn named_lambda_is_a_function() {
    let f = one("scale = lambda v, k=factor: v * k * gain\n");
    assert_eq!(freads(&f, "scale"), ["gain"]);
    assert_eq!(reads(&f), ["factor"]);
    assert_eq!(binds(&f), ["scale"]);
}

#[test]
fn anonymous_lambda_reads_are_module_reads() {
    let f = one("df2 = df.apply(lambda row: row[col] * w)\n");
    assert_eq!(reads(&f), ["col", "df", "w"]);
    assert!(f.functions.is_empty());
}

// ---- classes -------------------------------------------------------------------

#[test]
fn class_body_reads_are_module_reads_methods_are_function_facts() {
    let src = "\
@register
class Model(Base, metaclass=Meta):
    size = default_size
    double = size * 2
    def fit(self, X):
        return solver(X, self.size, double_global)
    @staticmethod
    def make():
        return Model()
";
    let f = one(src);
    no_errors(&f);
    // Method decorators run when the class body does.
    assert_eq!(
        reads(&f),
        ["Base", "Meta", "default_size", "register", "staticmethod"]
    );
    assert!(f.classes.contains("Model"));
    assert_eq!(freads(&f, "Model"), ["Model", "double_global", "solver"]);
    assert!(!f.functions.contains_key("fit"));
    assert_eq!(binds(&f), ["Model"]);
}

#[test]
fn class_scope_is_invisible_to_methods() {
    let f = one("class A:\n    k = 1\n    def m(self):\n        return k\n");
    assert_eq!(freads(&f, "A"), ["k"]);
    // A class body reads the global before binding its own.
    let f = one("class A:\n    x = x\n");
    assert!(needs(&f, "x"));
}

// ---- match ---------------------------------------------------------------------

#[test]
fn match_patterns_bind_and_read() {
    let src = "\
match command:
    case Point(x=0, y=yy) if yy > limit:
        pass
    case [first, *rest]:
        pass
    case {'k': v, **others}:
        pass
    case Color.RED | None:
        pass
    case (1 | 2) as num:
        pass
    case _:
        pass
";
    let f = one(src);
    no_errors(&f);
    assert_eq!(binds(&f), ["first", "num", "others", "rest", "v", "yy"]);
    assert_eq!(reads(&f), ["Color", "Point", "command", "limit", "yy"]);
}

// ---- strings ----------------------------------------------------------------------

#[test]
fn f_strings_including_pep701_nesting() {
    let f = one("msg = f\"{name!r}: {value:{width}.{prec}f} {d[\"key\"]} {f'{inner}'}\"\n");
    no_errors(&f);
    assert_eq!(reads(&f), ["d", "inner", "name", "prec", "value", "width"]);
}

// ---- dynamic -----------------------------------------------------------------------

#[test]
fn dynamic_calls() {
    let f = one(
        "exec(code)\nv = eval('1')\ng = globals()\nl = locals()\nvs = vars()\nok = vars(obj)\n",
    );
    let kinds: Vec<_> = f.dynamic.iter().map(|d| d.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            DynamicKind::Exec,
            DynamicKind::Eval,
            DynamicKind::Globals,
            DynamicKind::Locals,
            DynamicKind::Vars
        ]
    );
    assert_eq!(f.dynamic[1].at, loc(1, 2, 5));
    let f = one("def f(eval):\n    return eval(1)\n");
    assert!(f.dynamic.is_empty());
}

// ---- IPython ----------------------------------------------------------------------

#[test]
fn line_magic_arguments_are_python() {
    let f = one(
        "%time model.fit(X)\n%timeit -n 3 -r 2 f(x)\n%prun -s cumulative run(cfg)\n%matplotlib inline\n",
    );
    no_errors(&f);
    assert_eq!(reads(&f), ["X", "cfg", "f", "model", "run", "x"]);
    assert_eq!(f.first_read["model"].at, loc(1, 1, 7));
    assert_eq!(f.first_read["x"].at, loc(1, 2, 21));
    let names: Vec<_> = f
        .ipython
        .iter()
        .map(|u| (u.kind, u.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (IpythonKind::LineMagic, "time"),
            (IpythonKind::LineMagic, "timeit"),
            (IpythonKind::LineMagic, "prun"),
            (IpythonKind::LineMagic, "matplotlib")
        ]
    );
    assert_eq!(f.ipython[0].text, "%time model.fit(X)");
}

#[test]
fn time_magic_can_bind() {
    let f = one("%time result = train(data)\nprint(result)");
    assert_eq!(binds(&f), ["result"]);
    assert!(!needs(&f, "result"));
}

#[test]
fn assigned_magics_and_shell_bind() {
    let f = one("files = !ls {folder}\nhere = %pwd\nout = !!echo $msg");
    no_errors(&f);
    assert_eq!(binds(&f), ["files", "here", "out"]);
    assert_eq!(reads(&f), ["folder", "msg"]);
    let kinds: Vec<_> = f.ipython.iter().map(|u| u.kind).collect();
    assert_eq!(
        kinds,
        [
            IpythonKind::Shell,
            IpythonKind::LineMagic,
            IpythonKind::ShellCapture
        ]
    );
}

#[test]
fn shell_escapes() {
    let f = one("!pip install x\n!echo {y} $other {{lit}} $$HOME\n!awk '{print $1}' file\n");
    no_errors(&f);
    assert_eq!(reads(&f), ["other", "y"]);
    assert_eq!(f.first_read["y"].at, loc(1, 2, 8));
    assert_eq!(f.first_read["other"].at, loc(1, 2, 12));
    assert_eq!(f.ipython[0].name, "pip");
    assert_eq!(f.ipython[0].text, "!pip install x");
}

#[test]
fn help_escapes_do_not_break() {
    let f = one("x?\n??y\nobj.method??\nz = 1");
    no_errors(&f);
    assert_eq!(
        f.ipython
            .iter()
            .filter(|u| u.kind == IpythonKind::Help)
            .count(),
        3
    );
    assert!(f.first_read.is_empty());
    assert_eq!(binds(&f), ["z"]);
}

#[test]
fn cell_magic_time_body_is_python() {
    let f = one("%%time\nmodel = fit(X)\n%time y = 2\n");
    no_errors(&f);
    assert_eq!(binds(&f), ["model", "y"]);
    assert_eq!(f.first_read["X"].at, loc(1, 2, 13));
    assert_eq!(f.ipython[0].kind, IpythonKind::CellMagic);
    assert_eq!(f.ipython[0].name, "time");
}

#[test]
fn cell_magic_timeit_setup_line_and_capture_target() {
    let f = one("%%timeit -n 2 setup(a)\nrun(b)\n");
    assert_eq!(reads(&f), ["a", "b", "run", "setup"]);
    let f = one("%%capture --no-stderr out\nnoisy()\n");
    assert_eq!(binds(&f), ["out"]);
    assert_eq!(reads(&f), ["noisy"]);
}

#[test]
fn foreign_cell_magics_are_skipped() {
    for src in [
        "%%bash\nfor f in *.csv; do echo $f; done\n",
        "%%writefile train.py\nimport os\nx = = 1\n",
        "\n%%html\n<b>{x}</b>\n",
        "%%sql\nSELECT * FROM t\n",
    ] {
        let f = one(src);
        no_errors(&f);
        assert!(f.first_bind.is_empty() && f.first_read.is_empty(), "{src}");
        assert_eq!(f.ipython.len(), 1);
        assert_eq!(f.ipython[0].kind, IpythonKind::CellMagic);
        assert_eq!(
            f.ipython[0].at.line,
            if src.starts_with('\n') { 2 } else { 1 }
        );
    }
}

#[test]
fn unknown_cell_magic_is_best_effort() {
    let f = one("%%mymagic --opt\nz = w\n");
    assert_eq!(binds(&f), ["z"]);
    let f = one("%%mymagic\nSELECT * FROM t WHERE a = b\n");
    no_errors(&f);
    assert!(f.first_read.is_empty());
}

#[test]
fn cell_magic_not_on_first_line_is_an_error() {
    let f = one("x = 1\n%%time\ny = 2\n");
    assert_eq!(f.syntax_errors.len(), 1);
    assert_eq!(f.syntax_errors[0].at, loc(1, 2, 1));
}

#[test]
fn store_magic() {
    let f = one("%store -r saved\n%store result\n");
    assert_eq!(binds(&f), ["saved"]);
    assert_eq!(reads(&f), ["result"]);
}

#[test]
fn autocall_escapes_read_the_callee() {
    let f = one("/print a\n");
    assert_eq!(f.ipython[0].kind, IpythonKind::AutoCall);
    assert_eq!(reads(&f), ["print"]);
}

// ---- errors, line endings, empty --------------------------------------------------

#[test]
fn syntax_errors_are_reported_once_per_cell_at_the_first_with_locations() {
    // As Python does: the parser's recovery makes the errors after the first mostly
    // echoes of it (`c = = 2` after `def f(:` would be a second, independent one,
    // which the user sees once the first is fixed).
    let f = block(&["a = 1\nb = (\n", "ok = 1", "def f(:\n    pass\nc = = 2\n"]);
    assert_eq!(f.syntax_errors.len(), 2, "{:?}", f.syntax_errors);
    assert!(f.syntax_errors.iter().any(|e| e.at.cell == 1));
    assert!(!f.syntax_errors.iter().any(|e| e.at.cell == 2));
    let cell3: Vec<_> = f.syntax_errors.iter().filter(|e| e.at.cell == 3).collect();
    assert_eq!(cell3.len(), 1);
    assert_eq!(cell3[0].at.line, 1);
    // Recovery still sees the names around the errors.
    assert!(f.first_bind.contains_key("a") && f.first_bind.contains_key("ok"));
}

#[test]
fn a_malformed_number_is_named_and_its_recovery_reads_no_empty_name() {
    let f = one("x = 0x\nprint(x)\n");
    assert_eq!(f.syntax_errors.len(), 1, "{:?}", f.syntax_errors);
    assert_eq!(f.syntax_errors[0].message, "invalid number literal `0x`");
    assert_eq!(f.syntax_errors[0].at, loc(1, 1, 5));
    assert!(!f.first_read.contains_key(""), "{:?}", f.first_read);
}

#[test]
fn errors_inside_magic_arguments_map_into_the_cell() {
    let f = one("x = 1\n%time fit(X\n");
    assert!(!f.syntax_errors.is_empty());
    assert!(
        f.syntax_errors.iter().all(|e| e.at.line == 2),
        "{:?}",
        f.syntax_errors
    );
}

#[test]
fn crlf_sources() {
    let f = one("a = 1\r\nb = a + c\r\n%time d = e\r\n");
    no_errors(&f);
    assert_eq!(binds(&f), ["a", "b", "d"]);
    assert_eq!(f.first_read["c"].at, loc(1, 2, 9));
    assert_eq!(f.first_read["e"].at, loc(1, 3, 11));
    let f = one("%%time\r\nx = y\r\n");
    assert_eq!(f.first_read["y"].at, loc(1, 2, 5));
}

#[test]
fn empty_and_blank_cells() {
    let f = block(&["", "\n\n", "   ", "# just a comment"]);
    no_errors(&f);
    assert!(f.first_read.is_empty() && f.first_bind.is_empty());
}

#[test]
fn seq_spans_cells_and_columns_count_chars() {
    let f = block(&["x = 1", "s = 'é'; y = x"]);
    assert!(f.first_bind["x"].seq < f.first_read["x"].seq);
    assert_eq!(f.first_read["x"].at, loc(2, 1, 14));
}

// ---- special cells ----------------------------------------------------------------

fn cell(src: &str) -> CellSource<'_> {
    CellSource {
        number: 4,
        source: src,
    }
}

#[test]
fn parameters_accept_each_literal_kind() {
    let src = "\
# hyper-parameters
lr = 0.1
epochs = 10
neg = -1
negf = -0.5
tiny = 1e-3
pos = +2
big = 1_000
mask = 0xFF
name = 'adam'
dq = \"x\"
tq = '''multi'''
cat = 'a' 'b'
fs = f'plain'
flag = True
off = False
typed: float = 2.5
minimum = -9223372036854775808
";
    let (decls, errs) = parse_parameters(&cell(src));
    assert!(errs.is_empty(), "{errs:?}");
    let got: Vec<_> = decls
        .iter()
        .map(|d| (d.name.as_str(), d.value.clone()))
        .collect();
    use PipelineValue::*;
    assert_eq!(
        got,
        [
            ("lr", Float(0.1)),
            ("epochs", Int(10)),
            ("neg", Int(-1)),
            ("negf", Float(-0.5)),
            ("tiny", Float(1e-3)),
            ("pos", Int(2)),
            ("big", Int(1000)),
            ("mask", Int(255)),
            ("name", Str("adam".into())),
            ("dq", Str("x".into())),
            ("tq", Str("multi".into())),
            ("cat", Str("ab".into())),
            ("fs", Str("plain".into())),
            ("flag", Bool(true)),
            ("off", Bool(false)),
            ("typed", Float(2.5)),
            ("minimum", Int(i64::MIN)),
        ]
    );
    assert_eq!(decls[0].at, loc(4, 2, 1));
}

#[test]
fn parameters_reject_with_messages() {
    let src = "\
a = None
b = [1, 2]
c = {'k': 1}
lr = 0.1 * 2
d = make()
e, f = 1, 2
g = h = 1
i = f'{x}'
j = 99999999999999999999
k = other
print(a)
l = -x
m = 1j
";
    let (decls, errs) = parse_parameters(&cell(src));
    assert!(decls.is_empty(), "{decls:?}");
    assert_eq!(errs.len(), 13, "{errs:#?}");
    let lines: Vec<u32> = errs.iter().map(|e| e.at.line).collect();
    assert_eq!(lines, (1..=13).collect::<Vec<_>>());
    assert!(errs[0].message.contains("`a = None`") && errs[0].message.contains("None"));
    assert_eq!(
        errs[3].message,
        "`lr = 0.1 * 2` is not a literal (an expression): pipeline parameters must be int, float, str or bool literals"
    );
    assert!(errs[4].message.contains("a call"));
    assert!(errs[6].message.contains("several targets"));
    assert!(errs[7].message.contains("placeholders"));
    assert!(errs[8].message.contains("64 bits"));
    assert!(errs[10].message.contains("not an assignment"));
}

#[test]
fn parameters_later_definition_wins() {
    let (decls, errs) = parse_parameters(&cell("a = 1\nb = 2\na = 'x'\n"));
    assert!(errs.is_empty());
    assert_eq!(decls.len(), 2);
    assert_eq!(decls[0].value, PipelineValue::Str("x".into()));
    assert_eq!(decls[0].at.line, 3);
}

#[test]
fn parameters_syntax_errors_and_magics() {
    let (_, errs) = parse_parameters(&cell("a = \nb = 1\n%env X=1\n"));
    assert!(errs.iter().any(|e| e.at.line == 1));
    assert!(
        errs.iter()
            .any(|e| e.at.line == 3 && e.message.contains("not an assignment"))
    );
    let (decls, errs) = parse_parameters(&cell(""));
    assert!(decls.is_empty() && errs.is_empty());
}

#[test]
fn metrics_cell() {
    let src = "# metrics\nprint(acc)\n\nloss\nprint(acc)\nprint(a, b)\nx = 1\nprint(f(y))\n";
    let (metrics, errs) = parse_metrics(&cell(src));
    let names: Vec<_> = metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["acc", "loss"]);
    assert_eq!(metrics[0].1, loc(4, 2, 7));
    assert_eq!(errs.len(), 3, "{errs:?}");
    // The location is the diagnostic's; the message does not repeat it.
    assert!(
        errs[0].message.starts_with("`print(a, b)`"),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[1].at.line, 7);
}

// ---- robustness -------------------------------------------------------------------

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const SNIPPETS: &[&str] = &[
        "x = [i for i in range(3)]\n",
        "def f(a, *, b=c):\n    global g\n    g = a\n",
        "%time model.fit(X)\n",
        "%%time\ny = x\n",
        "!echo {y} $z\n",
        "match p:\n    case {'a': [b, *c]}:\n        pass\n",
        "class A(B):\n    def m(self):\n        return f'{self!r:>{w}}'\n",
        "lr = -0.5\nname = 'x'\n",
        "print(acc)\n",
        "try:\n    pass\nexcept E as e:\n    del e\n",
    ];

    fn mutate(base: &str, edits: &[(usize, u8, char)]) -> String {
        let mut chars: Vec<char> = base.chars().collect();
        for &(pos, op, c) in edits {
            let i = if chars.is_empty() {
                0
            } else {
                pos % (chars.len() + 1)
            };
            match op % 3 {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    fn run_all(src: &str) {
        let c = CellSource {
            number: 1,
            source: src,
        };
        let _ = analyze_block(&[c, c]);
        let _ = parse_parameters(&c);
        let _ = parse_metrics(&c);
    }

    proptest! {
        // PROPTEST_CASES=N for a longer run.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        #[test]
        fn never_panics_on_random_text(src in "(?s).{0,200}") {
            run_all(&src);
        }

        #[test]
        fn never_panics_on_python_like_text(src in "[a-z%!?{}$()\\[\\]:=,.'\"\\\\ \t\r\n*@#-]{0,120}") {
            run_all(&src);
        }

        #[test]
        fn never_panics_on_mutated_snippets(
            which in 0..SNIPPETS.len(),
            edits in proptest::collection::vec((0usize..200, 0u8..3, any::<char>()), 0..8),
        ) {
            run_all(&mutate(SNIPPETS[which], &edits));
        }

        #[test]
        fn locations_stay_inside_the_cell(src in "[a-z =%!{}()\r\n]{0,80}") {
            let c = CellSource { number: 7, source: &src };
            let f = analyze_block(&[c]);
            let max_line = src.split(['\n', '\r']).count() as u32 + 1;
            let all = f.first_read.values().chain(f.first_bind.values()).map(|o| o.at)
                .chain(f.syntax_errors.iter().map(|e| e.at));
            for at in all {
                prop_assert_eq!(at.cell, 7);
                prop_assert!(at.line >= 1 && at.line <= max_line);
                prop_assert!(at.col >= 1);
            }
        }
    }
}

#[test]
fn deep_nesting_is_reported_not_fatal() {
    for src in [
        format!("x = {}1{}", "(".repeat(5000), ")".repeat(5000)),
        format!("x = {}1", "-".repeat(1_000_000)),
        format!("x = {}1{}", "[".repeat(900), "]".repeat(900)),
        "y = not x\n".repeat(2000),
    ] {
        let f = one(&src);
        assert!(f.syntax_errors.len() <= 1, "{:?}", f.syntax_errors);
        let _ = parse_parameters(&cell(&src));
        let _ = parse_metrics(&cell(&src));
    }
    let f = one(&format!("x = {}1", "-".repeat(1_000_000)));
    assert!(f.syntax_errors[0].message.contains("nested too deeply"));
}

// ---- effects ---------------------------------------------------------------

fn mutated(f: &BlockFacts) -> Vec<&str> {
    f.mutated.keys().map(String::as_str).collect()
}

#[test]
fn in_place_changes_of_module_names() {
    let f = one(
        "import numpy as np\nimport random\na.append(1)\nb[0] = 2\nc.x = 3\nd += [4]\ndel e[0]\nmodel.fit(X, y)\nn = len(z)\nm = df.mean()\ndf2.drop(columns=['a'], inplace=True)\nnp.copyto(dst, src)\nrandom.shuffle(deck)",
    );
    assert_eq!(
        mutated(&f),
        vec!["a", "b", "c", "d", "deck", "df2", "dst", "e", "model"]
    );
}

#[test]
fn method_results_share_their_receiver_unless_pure() {
    let f = one(
        "b = a\nc = (a, x)\nd = a.fit(X)\ne = a.copy()\ng = f(a)\nfor row in rows: pass\nh = a[0].b",
    );
    let shares: Vec<(&str, Vec<&str>)> = f
        .shares
        .iter()
        .filter(|s| !s.sources.is_empty())
        .map(|s| {
            (
                s.target.as_str(),
                s.sources.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        shares,
        vec![
            ("b", vec!["a"]),
            ("c", vec!["a", "x"]),
            ("d", vec!["a"]),
            ("g", vec!["a", "f"]),
            ("row", vec!["rows"]),
            ("h", vec!["a"]),
        ]
    );
}

#[test]
fn functions_record_what_they_change() {
    let f = one(
        "seen = []\ndef log(v):\n    seen.append(v)\ndef grow(xs, n):\n    rows = xs\n    rows.append(n)\n    return len(xs)\ndef reset():\n    global LIMIT\n    LIMIT = 0\ndef gen(n):\n    yield n",
    );
    let log = func(&f, "log");
    assert_eq!(log.global_mutates.iter().collect::<Vec<_>>(), vec!["seen"]);
    let grow = func(&f, "grow");
    assert_eq!(grow.params, vec!["xs", "n"]);
    assert_eq!(grow.mutated_params.iter().collect::<Vec<_>>(), vec!["xs"]);
    assert_eq!(fwrites(&f, "reset"), vec!["LIMIT"]);
    assert!(func(&f, "gen").is_generator);
    assert!(!log.is_generator);
    let calls: Vec<&str> = f.calls.iter().map(|c| c.callee.as_str()).collect();
    assert!(
        calls.is_empty(),
        "definitions call nothing at module level: {calls:?}"
    );
}

#[test]
fn module_level_calls_keep_their_arguments() {
    let f = one("log(x, y.z, 3, k=w)\nlen(q)");
    assert_eq!(f.calls.len(), 1);
    let c = &f.calls[0];
    assert_eq!(c.callee, "log");
    assert_eq!(
        c.args,
        vec![Some("x".to_string()), Some("y".to_string()), None]
    );
    assert_eq!(c.keywords, vec![("k".to_string(), "w".to_string())]);
}

#[test]
fn process_state_changes_are_classified() {
    let f = one(
        "import os, random\nimport numpy as np\nimport sklearn\nimport torch\nfrom decimal import getcontext\nimport pandas as pd\nimport warnings\n\
         os.environ['X'] = '1'\nos.chdir('/tmp')\nnp.random.seed(0)\nrandom.seed(1)\nsklearn.set_config(assume_finite=True)\ngetcontext().prec = 50\npd.set_option('display.max_rows', 5)\nwarnings.simplefilter('ignore')\nnp.seterr(all='raise')\ntorch.set_num_threads(1)\npd.options.display.width = 10",
    );
    let kinds: Vec<(StateKind, &str)> = f.state.iter().map(|s| (s.kind, s.what.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (StateKind::Environment, "os.environ[...]"),
            (StateKind::WorkingDirectory, "os.chdir"),
            (StateKind::RandomSeed, "numpy.random.seed"),
            (StateKind::RandomSeed, "random.seed"),
            (StateKind::Sklearn, "sklearn.set_config"),
            (StateKind::Decimal, "decimal.getcontext()"),
            (StateKind::Pandas, "pandas.set_option"),
            (StateKind::Warnings, "warnings.simplefilter"),
            (StateKind::Numpy, "numpy.seterr"),
            (StateKind::Unknown, "torch.set_num_threads"),
            (StateKind::Pandas, "pandas.options.display.width"),
        ]
    );
    assert!(
        mutated(&f).is_empty(),
        "modules are not values: {:?}",
        mutated(&f)
    );
}

#[test]
fn values_that_cannot_leave_the_process() {
    let f = one(
        "g = (x for x in y)\nfh = open('a.txt')\nwith open('b') as h: pass\nok = [x for x in y]",
    );
    let u: Vec<(&str, UnsaveableKind)> = f
        .unsaveable
        .iter()
        .map(|u| (u.name.as_str(), u.kind))
        .collect();
    assert_eq!(
        u,
        vec![
            ("g", UnsaveableKind::Generator),
            ("fh", UnsaveableKind::OpenFile)
        ]
    );
}
