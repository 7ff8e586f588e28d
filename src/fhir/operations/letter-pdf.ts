/**
 * Lays out a registration letter (src/cases/letter.ts) as a PDF with pdf-lib: US Letter, the
 * standard Helvetica fonts (no font files to ship), lines wrapped on the font's real glyph widths.
 */
import { PDFDocument, StandardFonts, rgb } from 'pdf-lib';
import type { PDFFont, PDFPage } from 'pdf-lib';
import type { LetterBlockStyle, RegistrationLetter } from '../../cases/letter.ts';

const PAGE_WIDTH = 612; // 8.5 in at 72 pt/in
const PAGE_HEIGHT = 792; // 11 in
const MARGIN = 64;

interface BlockLayout {
  bold: boolean;
  size: number;
  /** Space above the block, in points. */
  before: number;
  /** Left indent, in points. */
  indent: number;
}

const LAYOUT: Record<LetterBlockStyle, BlockLayout> = {
  title: { bold: true, size: 18, before: 0, indent: 0 },
  'reference-number': { bold: true, size: 16, before: 18, indent: 0 },
  heading: { bold: true, size: 12.5, before: 18, indent: 0 },
  paragraph: { bold: false, size: 11, before: 8, indent: 0 },
  step: { bold: false, size: 11, before: 6, indent: 14 },
  note: { bold: true, size: 11, before: 12, indent: 0 },
};

/** Greedy word wrap on the font's advance widths; a word longer than the line (a URL) is cut. */
export function wrapText(text: string, font: PDFFont, size: number, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const candidate = line === '' ? word : `${line} ${word}`;
    if (font.widthOfTextAtSize(candidate, size) <= width) {
      line = candidate;
      continue;
    }
    if (line !== '') {
      lines.push(line);
    }
    // A word longer than the line (a URL, or a run of characters someone typed) is cut into pieces,
    // measuring each character once: re-measuring the rest at every cut took minutes for a long word.
    let piece = '';
    let pieceWidth = 0;
    for (const char of word) {
      const charWidth = font.widthOfTextAtSize(char, size);
      if (piece !== '' && pieceWidth + charWidth > width) {
        lines.push(piece);
        piece = '';
        pieceWidth = 0;
      }
      piece += char;
      pieceWidth += charWidth;
    }
    line = piece;
  }
  if (line !== '') {
    lines.push(line);
  }
  return lines;
}

/** The letter as PDF bytes. `issuedAt` becomes the document's creation date. */
export async function renderLetterPdf(letter: RegistrationLetter, issuedAt: Date): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  pdf.setTitle(letter.title);
  pdf.setLanguage('en-US');
  pdf.setCreator('second-opinion-hub');
  pdf.setProducer('second-opinion-hub (pdf-lib)');
  pdf.setCreationDate(issuedAt);
  pdf.setModificationDate(issuedAt);
  const regular = await pdf.embedFont(StandardFonts.Helvetica);
  const bold = await pdf.embedFont(StandardFonts.HelveticaBold);

  let page: PDFPage = pdf.addPage([PAGE_WIDTH, PAGE_HEIGHT]);
  let y = PAGE_HEIGHT - MARGIN;
  for (const block of letter.blocks) {
    const layout = LAYOUT[block.style];
    const font = layout.bold ? bold : regular;
    const leading = layout.size * 1.35;
    y -= layout.before;
    for (const line of wrapText(block.text, font, layout.size, PAGE_WIDTH - 2 * MARGIN - layout.indent)) {
      if (y - leading < MARGIN) {
        page = pdf.addPage([PAGE_WIDTH, PAGE_HEIGHT]);
        y = PAGE_HEIGHT - MARGIN;
      }
      y -= leading;
      page.drawText(line, { x: MARGIN + layout.indent, y, size: layout.size, font, color: rgb(0, 0, 0) });
    }
  }
  return pdf.save({ useObjectStreams: false });
}
