/**
 * A FHIR narrative (`text.div`, XHTML) as plain paragraphs. It is parsed as an inert document (no
 * script runs, nothing loads) and only its text is kept: the app never renders markup a writer sent.
 */
const BLOCKS = 'p, li, h1, h2, h3, h4, h5, h6, pre, td, th, dt, dd';

export function narrativeParagraphs(div: string | undefined): string[] {
  if (div === undefined || div.trim() === '') {
    return [];
  }
  const body = new DOMParser().parseFromString(div, 'text/html').body;
  const blocks = [...body.querySelectorAll(BLOCKS)].filter((block) => block.querySelector(BLOCKS) === null);
  return (blocks.length > 0 ? blocks : [body])
    .map((node) => (node.textContent ?? '').replace(/\s+/g, ' ').trim())
    .filter((text) => text !== '');
}
