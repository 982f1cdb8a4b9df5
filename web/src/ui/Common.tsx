import { useEffect, useRef, type ReactNode } from 'react';
import { hue, initials } from './hooks';

export function Avatar({ id, name, online, size = 'md' }: { id: string; name: string; online?: boolean | null; size?: 'sm' | 'md' }) {
  return (
    <span className={`avatar avatar-${size} hue-${Math.floor(hue(id) / 30)}`} aria-hidden="true">
      {initials(name)}
      {online !== undefined && online !== null && <span className={`dot ${online ? 'on' : 'off'}`} />}
    </span>
  );
}

/** Modal dialog: focuses its first control, Escape closes, focus returns to the opener. */
export function Dialog({ title, onClose, children, wide }: { title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    const first = ref.current?.querySelector<HTMLElement>('input, textarea, button:not(.dialog-close), [tabindex="0"]');
    (first ?? ref.current)?.focus();
    return () => opener?.focus?.();
  }, []);
  return (
    <div className="backdrop">
      <div
        className={`dialog ${wide ? 'wide' : ''}`}
        role="dialog"
        aria-modal="true"
        aria-label={title}
        ref={ref}
        tabIndex={-1}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            e.stopPropagation();
            e.preventDefault();
            onClose();
          }
          if (e.key === 'Tab') {
            // keep Tab inside the dialog
            const els = [...(ref.current?.querySelectorAll<HTMLElement>('button, input, textarea, [tabindex="0"]') ?? [])];
            if (!els.length) return;
            const i = els.indexOf(document.activeElement as HTMLElement);
            if (e.shiftKey && i <= 0) {
              e.preventDefault();
              els[els.length - 1].focus();
            } else if (!e.shiftKey && i === els.length - 1) {
              e.preventDefault();
              els[0].focus();
            }
          }
        }}
      >
        <header className="dialog-head">
          <h2>{title}</h2>
          <button className="icon-btn dialog-close" onClick={onClose} aria-label="Close">
            ✕
          </button>
        </header>
        <div className="dialog-body">{children}</div>
      </div>
    </div>
  );
}
