import { PDFDocument, StandardFonts } from 'pdf-lib';
import { wrapText } from './letter-pdf.ts';

describe('wrapText', () => {
  test('a word longer than the line is cut into pieces that fit, in time linear in its length', async () => {
    const font = await (await PDFDocument.create()).embedFont(StandardFonts.Helvetica);
    const started = performance.now();
    const lines = wrapText(`${'x'.repeat(20_000)} and then words`, font, 10.5, 480);
    // Re-measuring the rest of the word at every cut took minutes for 2,000 characters.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(lines.every((line) => font.widthOfTextAtSize(line, 10.5) <= 480)).toBe(true);
    expect(lines.join('').replace(/ and then words$/, '')).toBe('x'.repeat(20_000));
    expect(lines.at(-1)).toMatch(/ and then words$/);
  });
});
