// Spatial navigation for TV mode (arrow keys move focus geometrically) and the Back key.

const FOCUSABLE =
  'button:not([disabled]), [href], input:not([disabled]), textarea:not([disabled]), select:not([disabled]), [tabindex]:not([tabindex="-1"])';

function visible(el: HTMLElement): boolean {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return false;
  const st = getComputedStyle(el);
  return st.visibility !== 'hidden' && st.display !== 'none';
}

/** The element focus should stay inside: the top-most open dialog, else the document. */
function scope(): ParentNode {
  const dialogs = document.querySelectorAll<HTMLElement>('[role="dialog"], [role="menu"]');
  return dialogs.length ? dialogs[dialogs.length - 1] : document;
}

export function focusables(root: ParentNode = scope()): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(FOCUSABLE)].filter(visible);
}

type Dir = 'up' | 'down' | 'left' | 'right';

export function moveFocus(dir: Dir): boolean {
  const all = focusables();
  const cur = document.activeElement as HTMLElement | null;
  if (!cur || !all.includes(cur)) {
    all[0]?.focus();
    return !!all[0];
  }
  const a = cur.getBoundingClientRect();
  const ax = a.left + a.width / 2;
  const ay = a.top + a.height / 2;
  let best: HTMLElement | null = null;
  let bestScore = Infinity;
  for (const el of all) {
    if (el === cur || el.contains(cur) || cur.contains(el)) continue;
    const b = el.getBoundingClientRect();
    const bx = b.left + b.width / 2;
    const by = b.top + b.height / 2;
    let main: number;
    let cross: number;
    switch (dir) {
      case 'up':
        if (b.bottom > a.top + 2 && by >= ay) continue;
        main = a.top - b.bottom;
        cross = Math.abs(bx - ax);
        break;
      case 'down':
        if (b.top < a.bottom - 2 && by <= ay) continue;
        main = b.top - a.bottom;
        cross = Math.abs(bx - ax);
        break;
      case 'left':
        if (b.right > a.left + 2 && bx >= ax) continue;
        main = a.left - b.right;
        cross = Math.abs(by - ay);
        break;
      case 'right':
        if (b.left < a.right - 2 && bx <= ax) continue;
        main = b.left - a.right;
        cross = Math.abs(by - ay);
        break;
    }
    const score = Math.max(0, main) + cross * 2;
    if (score < bestScore) {
      bestScore = score;
      best = el;
    }
  }
  if (best) {
    best.focus();
    best.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    return true;
  }
  return false;
}

function isEditable(el: Element | null): el is HTMLInputElement | HTMLTextAreaElement {
  return !!el && (el.tagName === 'TEXTAREA' || (el.tagName === 'INPUT' && !['button', 'checkbox', 'radio', 'submit'].includes((el as HTMLInputElement).type)));
}

/** Installs the TV key handler. onBack is called for Escape / Backspace (outside text fields). */
export function installTvKeys(onBack: () => void): () => void {
  const handler = (e: KeyboardEvent) => {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
    const t = document.activeElement;
    const dirs: Record<string, Dir> = { ArrowUp: 'up', ArrowDown: 'down', ArrowLeft: 'left', ArrowRight: 'right' };
    const dir = dirs[e.key];
    if (dir) {
      if (isEditable(t)) {
        const v = t.value;
        const s = t.selectionStart ?? 0;
        const en = t.selectionEnd ?? 0;
        // inside text: arrows move the caret unless at the edge
        if (dir === 'left' && s > 0) return;
        if (dir === 'right' && en < v.length) return;
        if (t.tagName === 'TEXTAREA') {
          if (dir === 'up' && v.lastIndexOf('\n', s - 1) !== -1) return;
          if (dir === 'down' && v.indexOf('\n', en) !== -1) return;
        }
      }
      if (moveFocus(dir)) e.preventDefault();
      return;
    }
    if (e.key === 'Escape' || e.key === 'GoBack' || e.key === 'BrowserBack' || (e.key === 'Backspace' && !isEditable(t))) {
      e.preventDefault();
      onBack();
    }
  };
  window.addEventListener('keydown', handler);
  return () => window.removeEventListener('keydown', handler);
}
