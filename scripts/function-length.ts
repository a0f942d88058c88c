// `bun run check:functions [max]`: lists every function in src/ longer than `max` lines (default 80, the
// project's rule), counting nested functions as part of the one that holds them. Exit 1 when there is one.
import { Glob } from "bun";
import ts from "typescript";

export interface LongFunction {
  file: string;
  line: number;
  name: string;
  lines: number;
}

function nameOf(n: ts.SignatureDeclaration): string {
  if (n.name) return n.name.getText();
  const p = n.parent;
  if (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)) return p.name.getText();
  return "<anonymous>";
}

/** Functions of one source text longer than `max` lines. */
export function longFunctions(file: string, text: string, max: number): LongFunction[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: LongFunction[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isFunctionLike(n) && "body" in n && n.body) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      if (last - first + 1 > max) out.push({ file, line: first + 1, name: nameOf(n), lines: last - first + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

if (import.meta.main) {
  const max = Number(process.argv[2] ?? 80);
  const root = new URL("..", import.meta.url).pathname;
  const found: LongFunction[] = [];
  for await (const file of new Glob("src/**/*.ts").scan(root)) found.push(...longFunctions(file, await Bun.file(root + file).text(), max));
  found.sort((a, b) => b.lines - a.lines);
  for (const f of found) console.log(`${f.file}:${f.line} ${f.name}: ${f.lines} lines`);
  console.log(found.length ? `${found.length} function(s) in src/ longer than ${max} lines` : `no function in src/ longer than ${max} lines`);
  process.exit(found.length ? 1 : 0);
}
