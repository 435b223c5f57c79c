// The manifest stored in every .mar: one sha256 and size per file, checked on extraction so a
// corrupted or tampered archive is refused before anything is deployed.
import { z } from 'zod';

export const manifestName = 'grpst-manifest.json';
export const manifestFormat = 'grpst-mar';
export const manifestVersion = 1;

export const manifestSchema = z.object({
  format: z.literal(manifestFormat),
  version: z.literal(manifestVersion),
  created: z.string(),
  /** Whether engines were copied in (`grpst archive --include_engine`). */
  includesEngine: z.boolean(),
  files: z.array(
    z.object({
      path: z.string().min(1),
      size: z.number().int().min(0),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      /** 0o755 for executables, 0o644 otherwise; nothing else is restored. */
      mode: z.union([z.literal(0o755), z.literal(0o644)]),
    }),
  ),
});

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestFile = Manifest['files'][number];
