/**
 * The pipeline drawn as layers: a step's layer is the length of the longest chain of
 * steps above it, so every edge points down. Edges are the `prev:` dependencies and
 * the data each step reads from another, labelled with the variables.
 */

export interface IInspectStep {
  name: string;
  depends_on?: string[];
  input_sources?: Record<string, string>;
  parameters?: string[];
  metrics?: string[];
  cells?: number[];
}

export interface INode {
  name: string;
  layer: number;
  x: number;
  y: number;
}

export interface IEdge {
  from: string;
  to: string;
  /** Variables `to` reads from `from` (empty: an order-only dependency). */
  variables: string[];
}

export interface ILayout {
  nodes: INode[];
  edges: IEdge[];
  width: number;
  height: number;
}

export const NODE_W = 120;
export const NODE_H = 28;
const GAP_X = 24;
const GAP_Y = 46;

export function edges(steps: IInspectStep[]): IEdge[] {
  const out = new Map<string, IEdge>();
  const edge = (from: string, to: string) => {
    const key = `${from}\u0000${to}`;
    let e = out.get(key);
    if (!e) {
      e = { from, to, variables: [] };
      out.set(key, e);
    }
    return e;
  };
  for (const s of steps) {
    for (const p of s.depends_on ?? []) {
      edge(p, s.name);
    }
    for (const [variable, producer] of Object.entries(s.input_sources ?? {})) {
      edge(producer, s.name).variables.push(variable);
    }
  }
  const list = [...out.values()];
  for (const e of list) {
    e.variables.sort();
  }
  return list;
}

export function layout(steps: IInspectStep[]): ILayout {
  const es = edges(steps).filter(
    e => steps.some(s => s.name === e.from) && steps.some(s => s.name === e.to)
  );
  const layer = new Map<string, number>();
  // Steps come in topological order from `kale inspect`; a parent is placed first.
  for (const s of steps) {
    let l = 0;
    for (const e of es) {
      if (e.to === s.name && layer.has(e.from)) {
        l = Math.max(l, (layer.get(e.from) as number) + 1);
      }
    }
    layer.set(s.name, l);
  }
  const byLayer: string[][] = [];
  for (const s of steps) {
    const l = layer.get(s.name) as number;
    (byLayer[l] = byLayer[l] ?? []).push(s.name);
  }
  const widest = Math.max(1, ...byLayer.map(names => names.length));
  const width = widest * NODE_W + (widest - 1) * GAP_X;
  const nodes: INode[] = [];
  byLayer.forEach((names, l) => {
    const rowWidth = names.length * NODE_W + (names.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    names.forEach((name, i) => {
      nodes.push({
        name,
        layer: l,
        x: left + i * (NODE_W + GAP_X),
        y: l * (NODE_H + GAP_Y)
      });
    });
  });
  const layers = byLayer.length;
  return {
    nodes,
    edges: es,
    width,
    height: Math.max(NODE_H, layers * NODE_H + (layers - 1) * GAP_Y)
  };
}
