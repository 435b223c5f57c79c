// Which JSON Schema keywords the compiler enforces, which it may ignore because they never
// constrain a value (annotations), and which it refuses: a schema with a refused keyword gets a
// 400 naming it, never an answer that only looks constrained.

/** Annotations and containers: they do not constrain the value. */
export const ignoredKeywords = new Set([
  '$schema',
  '$id',
  '$comment',
  '$defs',
  'definitions',
  'title',
  'description',
  'default',
  'examples',
  'example',
  'deprecated',
  'readOnly',
  'writeOnly',
  'strict',
  'discriminator',
  'xml',
  'externalDocs',
  'contentMediaType',
  'contentEncoding',
]);

/** Keywords the compiler enforces. */
export const enforcedKeywords = new Set([
  'type',
  'nullable',
  'enum',
  'const',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
  'properties',
  'required',
  'additionalProperties',
  'minProperties',
  'maxProperties',
  'items',
  'prefixItems',
  'additionalItems',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minLength',
  'maxLength',
  'format',
  'pattern',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
]);

/** Keywords that are valid JSON Schema but not enforced: a schema using them is refused. */
export const refusedKeywords = new Map<string, string>([
  ['patternProperties', 'properties matched by pattern'],
  ['propertyNames', 'constraints on property names'],
  ['dependencies', 'property dependencies'],
  ['dependentRequired', 'property dependencies'],
  ['dependentSchemas', 'property dependencies'],
  ['if', 'conditional schemas (if/then/else)'],
  ['then', 'conditional schemas (if/then/else)'],
  ['else', 'conditional schemas (if/then/else)'],
  ['not', 'negated schemas (not)'],
  ['contains', 'array "contains" constraints'],
  ['minContains', 'array "contains" constraints'],
  ['maxContains', 'array "contains" constraints'],
  ['unevaluatedProperties', 'unevaluatedProperties'],
  ['unevaluatedItems', 'unevaluatedItems'],
  ['$dynamicRef', 'dynamic references'],
  ['$recursiveRef', 'recursive references ($recursiveRef)'],
  ['$anchor', 'anchors'],
  ['$dynamicAnchor', 'anchors'],
]);

/** Keywords that only make sense for one JSON type (used to infer a missing "type"). */
export const keywordTypes: Record<string, string> = {
  properties: 'object',
  required: 'object',
  additionalProperties: 'object',
  minProperties: 'object',
  maxProperties: 'object',
  items: 'array',
  prefixItems: 'array',
  additionalItems: 'array',
  minItems: 'array',
  maxItems: 'array',
  uniqueItems: 'array',
  minLength: 'string',
  maxLength: 'string',
  format: 'string',
  pattern: 'string',
  minimum: 'number',
  maximum: 'number',
  exclusiveMinimum: 'number',
  exclusiveMaximum: 'number',
  multipleOf: 'number',
};

export const jsonTypes = ['string', 'number', 'integer', 'boolean', 'null', 'object', 'array'] as const;
export type JsonType = (typeof jsonTypes)[number];
