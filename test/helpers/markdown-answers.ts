// Answers whose markdown is easy to split wrongly while it streams in: blank lines inside fences
// and list items, loose lists, headings (setext ones too), tables, indented code, block quotes.
// Shared by the unit test of web/markdown-stream.js and the chat page's browser test.
export const trickyAnswers: Record<string, string> = {
  'fenced code with blank lines': 'Some code:\n\n```python\ndef f():\n\n    return 1\n\n\n# not a heading\n```\n\nAfter the code.\n',
  'tilde fence holding a backtick fence': 'Intro.\n\n~~~\n```\n\ninside\n~~~\n\nDone.',
  'loose list': 'Steps:\n\n1. First step\n\n2. Second step\n\n   still the second step\n\n3. Third step\n\nThat is all.',
  'tight list then loose list': '- a\n- b\n\n* c\n\n* d\n\nEnd.',
  'list holding a fence with blank lines': '- item\n\n  ```\n  code\n\n  more\n  ```\n\nAfter the list.',
  headings: '# Title\n\nText under the title.\n\n## Part\n\nMore text.\n\nSetext heading\n---\n\nLast.',
  tables: 'A table:\n\n| name | value |\n|:-----|------:|\n| a | 1 |\n| b | 2 |\n\nUnder the table.\n\n| x |\n|:-:|\n| y |',
  'indented code with blank lines': 'Code:\n\n    line one\n\n    line two\n\nAfter.',
  'block quotes and rules': '> quoted\n> more\n\n> another quote\n\n---\n\n***\n\nText.',
  'unclosed fence at the end': 'Before.\n\n```\ncode\n\nstill code',
};
