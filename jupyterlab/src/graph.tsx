/** The pipeline's steps as a DAG, the variables on the edges. */

import * as React from 'react';

import { IInspectStep, layout, NODE_H, NODE_W } from './dag';
import { stepColor } from './structure';

const PAD = 10;


export function Graph(props: {
  steps: IInspectStep[];
  /** Step order as the cells give it, for the colours the cell bars use. */
  order: string[];
  status?: Record<string, string>;
  onStep?: (name: string) => void;
}): JSX.Element {
  const l = layout(props.steps);
  const at = new Map(l.nodes.map(n => [n.name, n]));
  // An edge that skips layers bends out to the right, each a little further, so it
  // neither crosses the steps in between nor hides the others' labels.
  let bends = 0;
  const drawn = l.edges.map(e => {
    const a = at.get(e.from)!;
    const b = at.get(e.to)!;
    const x1 = PAD + a.x + NODE_W / 2;
    const y1 = PAD + a.y + NODE_H;
    const x2 = PAD + b.x + NODE_W / 2;
    const y2 = PAD + b.y;
    const label = e.variables.join(', ');
    let d: string;
    let lx: number;
    let ly: number;
    if (b.layer - a.layer > 1) {
      bends += 1;
      const bx = PAD + Math.max(a.x, b.x) + NODE_W + 14 + 26 * (bends - 1);
      const sx = PAD + a.x + NODE_W;
      const ex = PAD + b.x + NODE_W;
      const sy = PAD + a.y + NODE_H / 2;
      const ey = PAD + b.y + NODE_H / 2;
      d = `M ${sx} ${sy} C ${bx} ${sy}, ${bx} ${ey}, ${ex} ${ey}`;
      lx = bx - 6;
      ly = (sy + ey) / 2 + 3 + (bends % 2 ? -6 : 6);
    } else {
      const my = (y1 + y2) / 2;
      d = `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2 + 5;
      ly = my + 3;
    }
    return { e, d, label, lx, ly };
  });
  const width = l.width + 2 * PAD + (bends ? 26 * bends + 90 : 70);
  const height = l.height + 2 * PAD;
  return (
    <svg
      className="kale-dag"
      viewBox={`0 0 ${width} ${height}`}
      width="100%"
      style={{ maxWidth: `${width * 1.3}px` }}
      role="img"
      aria-label="pipeline graph"
    >
      <defs>
        <marker id="kale-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" className="kale-dag-arrow" />
        </marker>
      </defs>
      {drawn.map(({ e, d, label, lx, ly }) => {
        const short = label.length > 22 ? `${label.slice(0, 20)}…` : label;
        return (
          <g key={`${e.from}-${e.to}`} className="kale-dag-edge" data-from={e.from} data-to={e.to}>
            <path d={d} className={e.variables.length ? 'kale-dag-data' : 'kale-dag-order'} markerEnd="url(#kale-arrow)" />
            {label && (
              <text x={lx} y={ly} className="kale-dag-label">
                <title>{label}</title>
                {short}
              </text>
            )}
          </g>
        );
      })}
      {l.nodes.map(n => {
        const status = props.status?.[n.name];
        return (
          <g
            key={n.name}
            className={`kale-dag-node ${status ? `kale-status-${status}` : ''}`}
            data-step={n.name}
            transform={`translate(${PAD + n.x}, ${PAD + n.y})`}
            onClick={() => props.onStep?.(n.name)}
          >
            <rect width={NODE_W} height={NODE_H} rx={5} style={{ stroke: stepColor(props.order.indexOf(n.name)) }} />
            <rect width={6} height={NODE_H} rx={2} style={{ fill: stepColor(props.order.indexOf(n.name)) }} />
            <text x={NODE_W / 2 + 3} y={NODE_H / 2 + 4} textAnchor="middle">
              <title>{n.name}</title>
              {n.name.length > 16 ? `${n.name.slice(0, 15)}…` : n.name}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

/** A history plot: each trial's objective and the best so far. */
export function HistoryPlot(props: {
  points: { trial: number; value: number; best: number }[];
  objective: string;
}): JSX.Element {
  const w = 420;
  const h = 180;
  const m = { l: 48, r: 10, t: 10, b: 32 };
  const pts = props.points;
  if (pts.length === 0) {
    return <div className="kale-muted">No finished trial yet.</div>;
  }
  const xs = pts.map(p => p.trial);
  const ys = pts.flatMap(p => [p.value, p.best]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys);
  let y1 = Math.max(...ys);
  if (y0 === y1) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (w - m.l - m.r);
  const sy = (y: number) => h - m.b - ((y - y0) / (y1 - y0)) * (h - m.t - m.b);
  const best = pts.map((p, i) => `${i ? 'L' : 'M'} ${sx(p.trial)} ${sy(p.best)}`).join(' ');
  const ticks = [y0, (y0 + y1) / 2, y1];
  return (
    <svg className="kale-history" viewBox={`0 0 ${w} ${h}`} width="100%" role="img" aria-label="optimisation history">
      <line x1={m.l} y1={h - m.b} x2={w - m.r} y2={h - m.b} className="kale-axis" />
      <line x1={m.l} y1={m.t} x2={m.l} y2={h - m.b} className="kale-axis" />
      {ticks.map((t, i) => (
        <text key={i} x={m.l - 4} y={sy(t) + 3} textAnchor="end" className="kale-tick">
          {Number(t.toPrecision(3))}
        </text>
      ))}
      {[...new Set([x0, Math.round((x0 + x1) / 2), x1])].map(t => (
        <text key={`x${t}`} x={sx(t)} y={h - m.b + 12} textAnchor="middle" className="kale-tick">
          {t}
        </text>
      ))}
      <text x={(m.l + w - m.r) / 2} y={h - 3} textAnchor="middle" className="kale-tick">
        trial
      </text>
      <path d={best} className="kale-history-best" />
      {pts.map(p => (
        <circle key={p.trial} cx={sx(p.trial)} cy={sy(p.value)} r={3.5} className="kale-history-point">
          <title>
            trial {p.trial}: {props.objective}={p.value}
          </title>
        </circle>
      ))}
    </svg>
  );
}
