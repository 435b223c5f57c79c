// One way to print a size across the CLI (archive, build, pull, list, rm): binary units, as
// `du -h` and `ls -lh` print them.

/** 1536 -> "1.5 KiB"; sizes under 1 KiB in bytes. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
