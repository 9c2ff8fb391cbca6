// Fails the build when dist/ has something the app's CSP would block:
// default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ipc: http://ipc.localhost
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const dist = new URL("../dist/", import.meta.url).pathname;
const problems = [];

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else check(p, readFileSync(p, "utf8"));
  }
}

function check(path, text) {
  if (path.endsWith(".html")) {
    for (const m of text.matchAll(/<script\b[^>]*>/g)) {
      if (!/\bsrc=/.test(m[0])) problems.push(`${path}: inline <script>`);
    }
    if (/<style\b/.test(text)) problems.push(`${path}: <style> element`);
    if (/\sstyle=/.test(text)) problems.push(`${path}: style attribute`);
    for (const m of text.matchAll(/\b(?:src|href)="(https?:)?\/\/[^"]*"/g)) problems.push(`${path}: external ${m[0]}`);
  }
  if (path.endsWith(".js")) {
    // Markup that Svelte parses from strings must carry no style attributes.
    if (/<[a-z][^<>]*\sstyle=\\?["']/.test(text)) problems.push(`${path}: style attribute in parsed markup`);
    if (/\beval\(|new Function\(/.test(text)) problems.push(`${path}: eval or new Function`);
    if (/createElement\(["']style["']\)/.test(text)) problems.push(`${path}: creates <style> at runtime`);
  }
  if (path.endsWith(".css")) {
    if (/@import\s+url\(["']?https?:/.test(text) || /url\(["']?https?:/.test(text)) {
      problems.push(`${path}: external resource in CSS`);
    }
  }
}

walk(dist);
const cssFiles = readdirSync(join(dist, "assets")).filter((f) => f.endsWith(".css"));
if (cssFiles.length === 0) problems.push("dist/assets: no external CSS file was emitted");

if (problems.length > 0) {
  console.error("CSP check failed:\n" + problems.map((p) => "  " + p).join("\n"));
  process.exit(1);
}
console.log(`CSP check: dist/ is fine (${cssFiles.join(", ")}).`);
