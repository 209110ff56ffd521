//! The step graph: `prev:` edges, a stable topological order, and ancestor queries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::diagnostics::Diagnostic;
use crate::notebook::NotebookStructure;

/// Steps are identified by their index in [`NotebookStructure::steps`] (notebook order).
#[derive(Clone, Debug, Default)]
pub struct Dag {
    graph: DiGraph<usize, ()>,
    /// Step indices in topological order; ties broken by notebook order, so the
    /// pipeline reads like the notebook.
    order: Vec<usize>,
    /// `ancestors[i][j]`: step j is an ancestor of step i.
    ancestors: Vec<Vec<bool>>,
}

impl Dag {
    pub(crate) fn new(s: &NotebookStructure) -> Result<Dag, Diagnostic> {
        let n = s.steps.len();
        let mut graph = DiGraph::with_capacity(n, n);
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        for (child, step) in s.steps.iter().enumerate() {
            for (parent, _) in &step.parents {
                if let Some(p) = s.step_index(parent) {
                    graph.update_edge(nodes[p], nodes[child], ());
                }
            }
        }

        let order = topological_order(&graph, n);
        if order.len() < n {
            let cycle = tarjan_scc(&graph)
                .into_iter()
                .find(|scc| scc.len() > 1)
                .unwrap_or_default();
            let mut names: Vec<(usize, &str)> = cycle
                .iter()
                .map(|ix| (graph[*ix], s.steps[graph[*ix]].name.as_str()))
                .collect();
            names.sort();
            let first = names.first().map(|(i, _)| s.steps[*i].first_cell());
            let listed = names
                .iter()
                .map(|(_, n)| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut d = Diagnostic::error(format!("the steps {listed} depend on each other in a cycle"))
                .with_hint("a later cell of an existing step added a `prev:` edge back to a descendant; remove one of the `prev:` tags");
            if let Some(cell) = first {
                d = d.in_cell(cell);
            }
            return Err(d);
        }

        let mut ancestors = vec![vec![false; n]; n];
        for &i in &order {
            let parents: Vec<usize> = graph
                .neighbors_directed(nodes[i], petgraph::Incoming)
                .map(|p| graph[p])
                .collect();
            for p in parents {
                ancestors[i][p] = true;
                let inherited = ancestors[p].clone();
                for (j, is) in inherited.into_iter().enumerate() {
                    if is {
                        ancestors[i][j] = true;
                    }
                }
            }
        }
        Ok(Dag {
            graph,
            order,
            ancestors,
        })
    }

    /// Adds the edge `parent → child` (an ordering the notebook imposes that no `prev:`
    /// tag states). Refused (false) when it would close a cycle.
    pub(crate) fn add_edge(&mut self, parent: usize, child: usize) -> bool {
        if parent == child || self.is_ancestor(child, parent) {
            return false;
        }
        if self.is_ancestor(parent, child) && self.parents(child).contains(&parent) {
            return true;
        }
        let nodes: Vec<NodeIndex> = self.graph.node_indices().collect();
        let find = |i: usize| nodes.iter().copied().find(|ix| self.graph[*ix] == i);
        let (Some(p), Some(c)) = (find(parent), find(child)) else {
            return false;
        };
        self.graph.update_edge(p, c, ());
        // The child and everything below it now also descend from the parent and its
        // ancestors.
        let mut above = self.ancestors[parent].clone();
        above[parent] = true;
        let n = self.ancestors.len();
        for i in 0..n {
            if i == child || self.ancestors[i][child] {
                for (j, &is) in above.iter().enumerate() {
                    if is {
                        self.ancestors[i][j] = true;
                    }
                }
            }
        }
        self.order = topological_order(&self.graph, n);
        true
    }

    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn is_ancestor(&self, ancestor: usize, of: usize) -> bool {
        self.ancestors[of][ancestor]
    }

    pub fn ancestors_of(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        self.ancestors[step]
            .iter()
            .enumerate()
            .filter_map(|(j, &is)| is.then_some(j))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Direct parents of a step, by index.
    pub fn parents(&self, step: usize) -> Vec<usize> {
        let mut p: Vec<usize> = self
            .graph
            .node_indices()
            .find(|ix| self.graph[*ix] == step)
            .map(|ix| {
                self.graph
                    .neighbors_directed(ix, petgraph::Incoming)
                    .map(|p| self.graph[p])
                    .collect()
            })
            .unwrap_or_default();
        p.sort();
        p
    }
}

/// Kahn's algorithm, ties broken by notebook order (a min-heap of step indices), so the
/// pipeline reads like the notebook. Shorter than `n` when the graph has a cycle.
fn topological_order(graph: &DiGraph<usize, ()>, n: usize) -> Vec<usize> {
    let node_of: Vec<NodeIndex> = {
        let mut v = vec![NodeIndex::new(0); n];
        for ix in graph.node_indices() {
            v[graph[ix]] = ix;
        }
        v
    };
    let mut indegree: Vec<usize> = (0..n)
        .map(|i| {
            graph
                .neighbors_directed(node_of[i], petgraph::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for child in graph.neighbors_directed(node_of[i], petgraph::Outgoing) {
            let c = graph[child];
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    order
}
