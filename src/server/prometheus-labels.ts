// Prometheus label sets as the text exposition format writes them: {a="x",b="y"}.

export type Labels = Record<string, string>;

export function labelText(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${esc(labels[k])}"`).join(',')}}`;
}
