/**
 * The approved consultation letter as a PDF (issue 14): US Letter, DejaVu Sans embedded (subset, so
 * that any name prints and the text extracts as written), the letter's blocks from
 * cases/opinion-letter.ts, and on every page a footer with the reference number and "Page i of n".
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import fontkit from '@pdf-lib/fontkit';
import { PDFDocument, rgb } from 'pdf-lib';
import type { PDFFont, PDFPage } from 'pdf-lib';
import type { OpinionBlock, OpinionBlockStyle } from '../cases/opinion-letter.ts';
import { wrapText } from '../fhir/operations/letter-pdf.ts';

const PAGE_WIDTH = 612; // 8.5 in at 72 pt/in
const PAGE_HEIGHT = 792; // 11 in
const MARGIN = 64;
const FOOTER_SIZE = 8.5;

interface BlockLayout {
  bold: boolean;
  size: number;
  /** Space above the block, in points. */
  before: number;
  indent: number;
  grey?: boolean;
}

const LAYOUT: Record<OpinionBlockStyle, BlockLayout> = {
  letterhead: { bold: true, size: 16, before: 0, indent: 0 },
  meta: { bold: false, size: 10, before: 3, indent: 0, grey: true },
  title: { bold: true, size: 15, before: 22, indent: 0 },
  heading: { bold: true, size: 12, before: 16, indent: 0 },
  question: { bold: false, size: 10.5, before: 4, indent: 14, grey: true },
  paragraph: { bold: false, size: 10.5, before: 6, indent: 0 },
  signature: { bold: true, size: 11, before: 28, indent: 0 },
};

const require = createRequire(import.meta.url);
let fonts: Promise<[Uint8Array, Uint8Array]> | undefined;

/** The two font files, read once per process. */
function fontFiles(): Promise<[Uint8Array, Uint8Array]> {
  fonts ??= Promise.all([
    readFile(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf')),
    readFile(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf')),
  ]);
  return fonts;
}

export async function renderOpinionPdf(
  blocks: readonly OpinionBlock[],
  options: { title: string; issuedAt: Date; footer: string },
): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  pdf.registerFontkit(fontkit);
  pdf.setTitle(options.title);
  pdf.setLanguage('en-US');
  pdf.setCreator('second-opinion-hub');
  pdf.setProducer('second-opinion-hub (pdf-lib)');
  pdf.setCreationDate(options.issuedAt);
  pdf.setModificationDate(options.issuedAt);
  const [regularBytes, boldBytes] = await fontFiles();
  const regular = await pdf.embedFont(regularBytes, { subset: true });
  const bold = await pdf.embedFont(boldBytes, { subset: true });

  const bottom = MARGIN + FOOTER_SIZE * 3;
  let page: PDFPage = pdf.addPage([PAGE_WIDTH, PAGE_HEIGHT]);
  let y = PAGE_HEIGHT - MARGIN;
  for (const [index, block] of blocks.entries()) {
    const layout = LAYOUT[block.style];
    const font: PDFFont = layout.bold ? bold : regular;
    const leading = layout.size * 1.4;
    y -= layout.before;
    // A heading stays on the page of the first line that follows it.
    const next = block.style === 'heading' ? blocks[index + 1] : undefined;
    const keep = next ? LAYOUT[next.style].before + LAYOUT[next.style].size * 1.4 : 0;
    if (keep > 0 && y - leading - keep < bottom) {
      page = pdf.addPage([PAGE_WIDTH, PAGE_HEIGHT]);
      y = PAGE_HEIGHT - MARGIN;
    }
    for (const line of wrapText(block.text, font, layout.size, PAGE_WIDTH - 2 * MARGIN - layout.indent)) {
      if (y - leading < bottom) {
        page = pdf.addPage([PAGE_WIDTH, PAGE_HEIGHT]);
        y = PAGE_HEIGHT - MARGIN;
      }
      y -= leading;
      page.drawText(line, {
        x: MARGIN + layout.indent,
        y,
        size: layout.size,
        font,
        color: layout.grey ? rgb(0.3, 0.3, 0.3) : rgb(0, 0, 0),
      });
    }
  }
  const pages = pdf.getPages();
  pages.forEach((each, index) => {
    const number = `Page ${index + 1} of ${pages.length}`;
    each.drawText(options.footer, {
      x: MARGIN,
      y: MARGIN,
      size: FOOTER_SIZE,
      font: regular,
      color: rgb(0.4, 0.4, 0.4),
    });
    each.drawText(number, {
      x: PAGE_WIDTH - MARGIN - regular.widthOfTextAtSize(number, FOOTER_SIZE),
      y: MARGIN,
      size: FOOTER_SIZE,
      font: regular,
      color: rgb(0.4, 0.4, 0.4),
    });
  });
  return pdf.save({ useObjectStreams: false });
}
