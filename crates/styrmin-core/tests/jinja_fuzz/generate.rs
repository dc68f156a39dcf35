//! Random cases from a grammar of the Jinja2 constructs drivers use: typed expressions
//! (filters with arguments, tests, operators, Python methods), statements (for, if, set,
//! namespace, macros, whitespace control) laid out as YAML lines, and Contexts with unicode
//! strings, floats and nested maps in insertion order.

/// SplitMix64: a tiny deterministic PRNG, so a seed reproduces its cases exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One generated case: a template and its Context as JSON text (map order as written).
pub struct Case {
    pub template: String,
    pub context: String,
}

const STRINGS: &[&str] = &[
    "web",
    "Hello World",
    "it's",
    "say \"hi\"",
    "yes",
    "no",
    "on",
    "off",
    "0644",
    "1_000",
    "1:30",
    "2001-12-14",
    "null",
    "~",
    "a: b",
    "- x",
    "#tag",
    "<b>&amp;</b>",
    "  padded  ",
    "line one\nline two",
    "tab\there",
    "ünïcödé",
    "日本語",
    "emoji 🚀",
    "",
    "3.14",
    "1e3",
    "True",
    "x.y.z",
    "a,b,,c",
    "MiXeD cAsE",
    "back\\slash",
];

const FLOATS: &[&str] = &[
    "0.5",
    "2.5",
    "-1.25",
    "1e15",
    "1e16",
    "1.5e-05",
    "123456789012345.6",
    "3.0",
    "0.1",
    "100.0",
    "-0.0",
    "1234.5678",
    "0.0001",
    "9999999999999998.0",
];

const INTS: &[&str] = &["0", "1", "-3", "42", "1000", "644", "123456789", "-1", "7"];

const KEYS: &[&str] = &[
    "zeta", "alpha", "mid", "Beta", "x", "name", "port", "on", "yes", "1", "é",
];

/// Types of the expressions the grammar builds; the Context has variables of each.
#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
    List,
    Map,
    Any,
}

pub struct Generator {
    rng: Rng,
    depth: usize,
    /// Names a `{% set %}` or loop made available, with their types.
    locals: Vec<(String, Ty)>,
    counter: usize,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
            depth: 0,
            locals: Vec::new(),
            counter: 0,
        }
    }

    pub fn case(&mut self) -> Case {
        self.locals.clear();
        self.counter = 0;
        let context = self.context();
        let mut template = String::new();
        let lines = 1 + self.rng.below(6);
        for _ in 0..lines {
            self.statement(&mut template, 0);
        }
        if self.rng.chance(30) {
            template.push('\n');
        }
        Case { template, context }
    }

    fn string_literal(&mut self) -> String {
        let s = *self.rng.pick(STRINGS);
        python_literal(s)
    }

    fn json_scalar(&mut self) -> String {
        match self.rng.below(6) {
            0 => json_str(self.rng.pick::<&str>(STRINGS)),
            1 => self.rng.pick(INTS).to_string(),
            2 => self.rng.pick(FLOATS).to_string(),
            3 => self.rng.pick(&["true", "false"]).to_string(),
            4 => "null".into(),
            _ => json_str(self.rng.pick::<&str>(KEYS)),
        }
    }

    fn json_map(&mut self, depth: usize) -> String {
        let mut keys: Vec<&str> = KEYS.to_vec();
        let n = 1 + self.rng.below(4);
        let mut parts = Vec::new();
        for _ in 0..n {
            let key = keys.remove(self.rng.below(keys.len()));
            let value = if depth < 2 && self.rng.chance(25) {
                self.json_map(depth + 1)
            } else if self.rng.chance(15) {
                format!("[{}, {}]", self.json_scalar(), self.json_scalar())
            } else {
                self.json_scalar()
            };
            parts.push(format!("{}: {value}", json_str(key)));
        }
        format!("{{{}}}", parts.join(", "))
    }

    /// The Context: one variable per type (two of some), keys in a random order.
    fn context(&mut self) -> String {
        let mut entries = vec![
            ("s1", json_str(self.rng.pick::<&str>(STRINGS))),
            ("s2", json_str(self.rng.pick::<&str>(STRINGS))),
            ("i1", self.rng.pick(INTS).to_string()),
            ("i2", self.rng.pick(INTS).to_string()),
            ("f1", self.rng.pick(FLOATS).to_string()),
            ("b1", self.rng.pick(&["true", "false"]).to_string()),
            ("n1", "null".to_owned()),
        ];
        let list: Vec<String> = (0..self.rng.below(5))
            .map(|_| json_str(self.rng.pick::<&str>(STRINGS)))
            .collect();
        entries.push(("l1", format!("[{}]", list.join(", "))));
        let nums: Vec<String> = (0..1 + self.rng.below(4))
            .map(|_| self.rng.pick(INTS).to_string())
            .collect();
        entries.push(("l2", format!("[{}]", nums.join(", "))));
        let m1 = self.json_map(1);
        entries.push(("m1", m1));
        let m2 = self.json_map(0);
        entries.push(("m2", m2));
        for i in (1..entries.len()).rev() {
            let j = self.rng.below(i + 1);
            entries.swap(i, j);
        }
        let parts: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}: {v}", json_str(k)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn var(&mut self, ty: Ty) -> String {
        let locals: Vec<String> = self
            .locals
            .iter()
            .filter(|(_, t)| *t == ty || ty == Ty::Any)
            .map(|(n, _)| n.clone())
            .collect();
        if !locals.is_empty() && self.rng.chance(40) {
            return self.rng.pick(&locals).clone();
        }
        let names: &[&str] = match ty {
            Ty::Str => &["s1", "s2", "m1.name", "m2['x']"],
            Ty::Int => &["i1", "i2", "l2[0]", "l2|length"],
            Ty::Float => &["f1"],
            Ty::Bool => &["b1"],
            Ty::List => &["l1", "l2"],
            Ty::Map => &["m1", "m2"],
            Ty::Any => &[
                "s1", "i1", "f1", "b1", "n1", "l1", "l2", "m1", "m2", "m1.zeta", "missing",
                "m2.alpha", "m1['on']",
            ],
        };
        self.rng.pick(names).to_string()
    }

    fn expr(&mut self, ty: Ty) -> String {
        if self.depth > 3 || self.rng.chance(30) {
            return self.leaf(ty);
        }
        self.depth += 1;
        let e = match ty {
            Ty::Str => self.str_expr(),
            Ty::Int => self.int_expr(),
            Ty::Float => self.float_expr(),
            Ty::Bool => self.bool_expr(),
            Ty::List => self.list_expr(),
            Ty::Map => self.map_expr(),
            Ty::Any => {
                let ty =
                    *self
                        .rng
                        .pick(&[Ty::Str, Ty::Int, Ty::Float, Ty::Bool, Ty::List, Ty::Map]);
                self.expr(ty)
            }
        };
        self.depth -= 1;
        // Parenthesised, so a filter or method applied to it applies to all of it.
        format!("({e})")
    }

    fn leaf(&mut self, ty: Ty) -> String {
        if self.rng.chance(60) {
            return self.var(ty);
        }
        match ty {
            Ty::Str => self.string_literal(),
            Ty::Int => self.rng.pick(INTS).to_string(),
            Ty::Float => self.rng.pick(FLOATS).to_string(),
            Ty::Bool => self
                .rng
                .pick(&["true", "false", "True", "(none is none)"])
                .to_string(),
            Ty::List => {
                let n = self.rng.below(4);
                let items: Vec<String> = (0..n).map(|_| self.string_literal()).collect();
                format!("[{}]", items.join(", "))
            }
            Ty::Map => {
                let a = self.string_literal();
                let b = self.rng.pick(INTS).to_string();
                format!("{{'b': {a}, 'a': {b}}}")
            }
            Ty::Any => self.var(Ty::Any),
        }
    }

    fn small_int(&mut self) -> String {
        self.rng.pick(&["0", "1", "2", "3", "5", "10"]).to_string()
    }

    fn str_expr(&mut self) -> String {
        let s = self.expr(Ty::Str);
        match self.rng.below(40) {
            0 => format!("{s} | upper"),
            1 => format!("{s} | lower"),
            2 => format!("{s} | title"),
            3 => format!("{s} | capitalize"),
            4 => format!("{s} | trim"),
            5 => format!(
                "{s} | replace({}, {})",
                self.string_literal(),
                self.string_literal()
            ),
            6 => format!("{s} | center({})", self.small_int()),
            7 => format!(
                "{s} | truncate({}, {})",
                3 + self.rng.below(10),
                self.rng.pick(&["true", "false"])
            ),
            8 => format!("{s} | wordwrap({})", 3 + self.rng.below(8)),
            9 => format!("({}) | string", self.expr(Ty::Any)),
            // `~` of a non-text value prints it minijinja's way (docs/drivers.md).
            10 => format!("({s} | string) ~ ({} | string)", self.expr(Ty::Any)),
            11 => format!("{s}.upper()"),
            12 => format!("{s}.strip()"),
            13 => format!(
                "{s}.replace({}, {})",
                self.string_literal(),
                self.string_literal()
            ),
            14 => format!("{s}[{}:{}]", self.rng.below(3), 1 + self.rng.below(5)),
            15 => format!("{} | join({})", self.expr(Ty::List), self.string_literal()),
            16 => format!("{s} | indent({})", self.small_int()),
            17 => format!("'%s-%s' | format({s}, {})", self.expr(Ty::Any)),
            18 => format!("{} | tojson", self.expr(Ty::Any)),
            19 => format!("{s}.zfill({})", self.small_int()),
            20 => format!("{s}.ljust({})", self.small_int()),
            21 => format!("{s}.rjust({}, '*')", self.small_int()),
            22 => format!("{s}.removeprefix({})", self.string_literal()),
            23 => format!("{s}.removesuffix({})", self.string_literal()),
            24 => format!(
                "{s}.split({}) | join('|')",
                self.rng.pick(&["", "','", "' '"])
            ),
            25 => format!("{s}.rsplit(',', 1) | join('|')"),
            26 => format!("{s}.partition(':') | join('|')"),
            27 => format!("{s} | striptags"),
            28 => format!("{s} | escape"),
            29 => format!("{s} | forceescape"),
            30 => format!("{} | filesizeformat", self.expr(Ty::Int)),
            31 => format!("{s} | urlencode"),
            32 => format!("{s} | wordcount | string"),
            33 => format!("{s}.title()"),
            34 => format!("{s}.center({}, '-')", self.small_int()),
            35 => format!("{} | pprint", self.expr(Ty::Any)),
            36 => format!("{s} | reverse | join"),
            37 => format!("{s}.lstrip('w ')"),
            38 => format!("{} | xmlattr", self.expr(Ty::Map)),
            _ => format!(
                "{s} if {} else {}",
                self.expr(Ty::Bool),
                self.string_literal()
            ),
        }
    }

    fn int_expr(&mut self) -> String {
        let a = self.expr(Ty::Int);
        match self.rng.below(20) {
            0 => format!("{a} + {}", self.expr(Ty::Int)),
            1 => format!("{a} * {}", self.small_int()),
            2 => format!("{a} // {}", 1 + self.rng.below(4)),
            3 => format!("{a} % {}", 1 + self.rng.below(4)),
            4 => format!("{} | length", self.expr(Ty::List)),
            5 => format!("{} | length", self.expr(Ty::Str)),
            6 => format!("{} | int", self.expr(Ty::Float)),
            7 => format!("{} | int", self.expr(Ty::Str)),
            8 => format!("{a} | abs"),
            9 => format!("{} | sum", self.rng.pick(&["l2", "[1, 2, 3]"])),
            10 => format!("{} | count", self.expr(Ty::Map)),
            11 => format!("{}.find({})", self.expr(Ty::Str), self.string_literal()),
            12 => format!("{}.count('l')", self.expr(Ty::Str)),
            13 => format!("{a} - {}", self.expr(Ty::Int)),
            14 => format!("{} | max", self.rng.pick(&["l2", "[3, 1, 2]"])),
            15 => format!("{a} ** 2"),
            16 => format!("{} | int(7)", self.expr(Ty::Any)),
            17 => format!("{a} | round(0, 'ceil')"),
            18 => format!("-{a}"),
            _ => format!("{} | wordcount", self.expr(Ty::Str)),
        }
    }

    fn float_expr(&mut self) -> String {
        let a = self.expr(Ty::Float);
        match self.rng.below(10) {
            0 => format!("{a} + {}", self.expr(Ty::Int)),
            // `/` of integers beyond 2**53 differs (docs/drivers.md): keep them smaller.
            1 => format!(
                "({} % 1000003) / {}",
                self.expr(Ty::Int),
                1 + self.rng.below(7)
            ),
            2 => format!(
                "{a} | round({}, {})",
                self.rng.below(3),
                self.rng.pick(&["'common'", "'ceil'", "'floor'"])
            ),
            3 => format!("{} | float", self.expr(Ty::Int)),
            4 => format!("{} | float", self.expr(Ty::Str)),
            5 => format!("{a} * {}", self.expr(Ty::Float)),
            6 => format!("{a} | round"),
            7 => format!("{a} | abs"),
            8 => format!("{} | float(1.5)", self.expr(Ty::Any)),
            _ => format!("{a} - 0.1"),
        }
    }

    fn bool_expr(&mut self) -> String {
        let test = *self.rng.pick(&[
            "defined",
            "undefined",
            "none",
            "string",
            "number",
            "integer",
            "float",
            "mapping",
            "sequence",
            "iterable",
            "callable",
            "true",
            "false",
            "boolean",
            "odd",
            "even",
            "lower",
            "upper",
        ]);
        match self.rng.below(9) {
            0 | 1 => {
                let negate = if self.rng.chance(30) { "not " } else { "" };
                let subject = if matches!(test, "odd" | "even") {
                    self.expr(Ty::Int)
                } else if matches!(test, "lower" | "upper") {
                    self.expr(Ty::Str)
                } else {
                    self.expr(Ty::Any)
                };
                format!("{subject} is {negate}{test}")
            }
            2 => format!("{} > {}", self.expr(Ty::Int), self.expr(Ty::Int)),
            3 => format!("{} in {}", self.expr(Ty::Str), self.expr(Ty::List)),
            4 => format!("not {}", self.expr(Ty::Bool)),
            5 => format!("{} and {}", self.expr(Ty::Bool), self.expr(Ty::Bool)),
            6 => format!(
                "{}.startswith({})",
                self.expr(Ty::Str),
                self.string_literal()
            ),
            7 => format!("{} == {}", self.expr(Ty::Any), self.expr(Ty::Any)),
            _ => format!("{} is divisibleby(3)", self.expr(Ty::Int)),
        }
    }

    fn list_expr(&mut self) -> String {
        let l = self.expr(Ty::List);
        match self.rng.below(18) {
            0 => format!("{l} | sort"),
            1 => format!("{l} | reverse | list"),
            2 => format!("{l} | unique | list"),
            3 => format!("range({}) | list", self.rng.below(5)),
            4 => format!("{}.split()", self.expr(Ty::Str)),
            5 => format!("{l} | select | list"),
            6 => format!("{l} | map('string') | list"),
            7 => format!("{} | list", self.expr(Ty::Map)),
            8 => format!("{}.keys() | list", self.expr(Ty::Map)),
            9 => format!("{l} | batch(2) | list"),
            10 => format!("{}.items() | list", self.expr(Ty::Map)),
            11 => format!("{l} + {}", self.expr(Ty::List)),
            12 => format!("{l} | slice(2) | list"),
            13 => format!("{} | dictsort", self.expr(Ty::Map)),
            14 => format!("{l}[1:]"),
            15 => format!("{l} | reject('none') | list"),
            16 => format!("{}.values() | list", self.expr(Ty::Map)),
            _ => format!("{} | list", self.expr(Ty::Str)),
        }
    }

    fn map_expr(&mut self) -> String {
        match self.rng.below(4) {
            0 => format!("dict(k={}, a={})", self.expr(Ty::Any), self.expr(Ty::Int)),
            1 => format!(
                "{{'z': {}, 'a': {}}}",
                self.expr(Ty::Any),
                self.expr(Ty::Any)
            ),
            _ => self.var(Ty::Map),
        }
    }

    /// A printed expression: plain, through `tojson`, or inside YAML quotes.
    fn output(&mut self) -> String {
        let ty = *self.rng.pick(&[
            Ty::Str,
            Ty::Int,
            Ty::Float,
            Ty::Bool,
            Ty::List,
            Ty::Map,
            Ty::Any,
        ]);
        let e = self.expr(ty);
        let (open, close) = if self.rng.chance(15) {
            (
                *self.rng.pick(&["{{-", "{{ "]),
                *self.rng.pick(&["-}}", " }}"]),
            )
        } else {
            ("{{ ", " }}")
        };
        match self.rng.below(6) {
            0 => format!("{open}{e} | tojson{close}"),
            1 => format!("\"{open}{e}{close}\""),
            _ => format!("{open}{e}{close}"),
        }
    }

    fn key(&mut self) -> String {
        let base = *self
            .rng
            .pick(&["name", "on", "yes", "port", "mode", "ratio", "v", "no", "k"]);
        if self.rng.chance(40) {
            base.to_owned()
        } else {
            self.fresh(base)
        }
    }

    fn tag(&mut self, body: &str) -> String {
        let open = if self.rng.chance(15) { "{%-" } else { "{%" };
        let close = if self.rng.chance(15) { "-%}" } else { "%}" };
        format!("{open} {body} {close}")
    }

    fn statement(&mut self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        let choice = if indent > 4 { 0 } else { self.rng.below(11) };
        match choice {
            0..=3 => {
                let key = self.key();
                let value = self.output();
                out.push_str(&format!("{pad}{key}: {value}\n"));
            }
            4 => {
                // A list from a loop over a list or a mapping.
                let key = self.key();
                out.push_str(&format!("{pad}{key}:\n"));
                let name = self.fresh("it");
                let over_map = self.rng.chance(40);
                let head = if over_map {
                    let m = self.expr(Ty::Map);
                    let v = self.fresh("val");
                    self.locals.push((v.clone(), Ty::Any));
                    format!("for {name}, {v} in ({m}).items()")
                } else {
                    format!("for {name} in {}", self.expr(Ty::List))
                };
                self.locals
                    .push((name.clone(), if over_map { Ty::Str } else { Ty::Any }));
                let tag = self.tag(&head);
                out.push_str(&format!("{pad}{tag}\n"));
                let item = self.output();
                let extra = *self.rng.pick(&[
                    "",
                    " {{ loop.index }}",
                    " {{ loop.last }}",
                    " {{ loop.cycle('a', 'b') }}",
                    " {{ loop.revindex0 }}",
                ]);
                out.push_str(&format!("{pad}  - {item}{extra}\n"));
                let end = self.tag("endfor");
                out.push_str(&format!("{pad}{end}\n"));
                self.locals.pop();
                if over_map {
                    self.locals.pop();
                }
            }
            5 => {
                let cond = self.expr(Ty::Bool);
                out.push_str(&format!("{}\n", self.tag(&format!("if {cond}"))));
                self.statement(out, indent);
                if self.rng.chance(40) {
                    let cond = self.expr(Ty::Bool);
                    out.push_str(&format!("{}\n", self.tag(&format!("elif {cond}"))));
                    self.statement(out, indent);
                }
                if self.rng.chance(50) {
                    out.push_str(&format!("{}\n", self.tag("else")));
                    self.statement(out, indent);
                }
                out.push_str(&format!("{}\n", self.tag("endif")));
            }
            6 => {
                let ty = *self
                    .rng
                    .pick(&[Ty::Str, Ty::Int, Ty::List, Ty::Map, Ty::Float]);
                let name = self.fresh("v");
                let value = self.expr(ty);
                out.push_str(&format!("{}\n", self.tag(&format!("set {name} = {value}"))));
                self.locals.push((name, ty));
            }
            7 => {
                // namespace counters across a loop
                let ns = self.fresh("ns");
                let key = self.key();
                let list = self.expr(Ty::List);
                out.push_str(&format!(
                    "{{% set {ns} = namespace(n=0, names=[]) %}}{{% for x in {list} %}}{{% set {ns}.n = {ns}.n + 1 %}}{{% set {ns}.names = {ns}.names + [x | string] %}}{{% endfor %}}\n{pad}{key}: {{{{ {ns}.n }}}} {{{{ {ns}.names | join(',') }}}}\n"
                ));
            }
            8 => {
                // a macro with defaults, varargs and kwargs
                let m = self.fresh("mac");
                let default = self.expr(Ty::Str);
                let body = *self.rng.pick(&[
                    "{{ a }}-{{ b }}",
                    "{{ a }}{{ varargs | join(',') }}",
                    "{{ b }}{{ kwargs | dictsort | list }}",
                    "{{ a ~ b }}{{ varargs | length }}",
                ]);
                let key = self.key();
                let arg = self.expr(Ty::Any);
                let call = match self.rng.below(4) {
                    0 => format!("{m}({arg})"),
                    1 => format!("{m}({arg}, 'B', 1, 2)"),
                    2 => format!("{m}({arg}, b=2)"),
                    // An undefined value passed to an argument that has a default takes the
                    // default in minijinja (docs/drivers.md): pass a literal there.
                    _ => format!("{m}(b={}, a={arg})", self.string_literal()),
                };
                out.push_str(&format!(
                    "{{% macro {m}(a, b={default}) %}}{body}{{% endmacro %}}\n{pad}{key}: {{{{ {call} }}}}\n"
                ));
            }
            9 => {
                // a nested mapping
                let key = self.key();
                out.push_str(&format!("{pad}{key}:\n"));
                let n = 1 + self.rng.below(3);
                for _ in 0..n {
                    self.statement(out, indent + 2);
                }
            }
            _ => {
                // text emitted by a filter block or a set block, and YAML anchors/merges
                let key = self.key();
                match self.rng.below(3) {
                    0 => {
                        let s = self.expr(Ty::Str);
                        out.push_str(&format!(
                            "{pad}{key}: {{% filter upper %}}{{{{ {s} }}}}{{% endfilter %}}\n"
                        ));
                    }
                    1 => {
                        let name = self.fresh("blk");
                        let s = self.expr(Ty::Any);
                        out.push_str(&format!(
                            "{{% set {name} %}}{{{{ {s} }}}}{{% endset %}}{pad}{key}: {{{{ {name} }}}}\n"
                        ));
                    }
                    _ => {
                        let a = self.fresh("base");
                        let v = self.output();
                        out.push_str(&format!(
                            "{pad}{a}: &{a}\n{pad}  p: {v}\n{pad}  q: 1\n{pad}{key}:\n{pad}  <<: *{a}\n{pad}  q: 2\n"
                        ));
                    }
                }
            }
        }
    }
}

/// A Python string literal for `s` (single-quoted).
fn python_literal(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}
