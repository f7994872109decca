"""A graph runner for serving that calls the graph's nodes in a fixed order instead of through dask.

Rasa runs its model graph twice per turn or more (NLU once, the policies once per predicted action) with
``DaskGraphRunner``, which on every run recomputes the minimal sub-graph for the targets (a recursive walk without
memo), builds a dask task graph from it, orders it and executes it with dask's synchronous scheduler. Under the
20-citizen load that machinery was ~9 % of a Rasa worker's CPU beside the components' own 27 % (py-spy,
``benchmarks/README.md``). :class:`SequentialGraphRunner` computes, once per set of targets, the nodes the targets
need in dependency order and then only calls them: the same nodes, with the same inputs, as dask's synchronous
scheduler (which also runs one node at a time in the calling thread).

Training keeps Rasa's ``DaskGraphRunner`` (``rasa train`` does not go through ``bot.server``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import GraphNode
from rasa.engine.runner.dask import DaskGraphRunner

# a node to call, and the names of the nodes or inputs whose outputs it receives, in the order of its ``needs``
_Step = Tuple[Text, GraphNode, Tuple[Text, ...]]


class SequentialGraphRunner(DaskGraphRunner):
    """``DaskGraphRunner`` with the same results and errors, run as a precomputed sequence of node calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: Dict[Tuple[Text, ...], List[_Step]] = {}

    def plan(self, targets: Sequence[Text]) -> List[_Step]:
        """The nodes that ``targets`` depend on (themselves included), each after every node it needs."""
        key = tuple(targets)
        steps = self._plans.get(key)
        if steps is not None:
            return steps
        nodes = self._graph_schema.nodes
        steps, done, visiting = [], set(), set()

        def visit(name: Text) -> None:
            if name in done or name not in nodes:  # not a node: an input placeholder such as __message__
                return
            if name in visiting:
                raise GraphRunError(f"The graph has a cycle through node '{name}'.")
            visiting.add(name)
            needs = tuple(nodes[name].needs.values())
            for need in needs:
                visit(need)
            visiting.discard(name)
            done.add(name)
            steps.append((name, self._instantiated_nodes[name], needs))

        for target in key:
            visit(target)
        self._plans[key] = steps
        return steps

    def run(self, inputs: Optional[Dict[Text, Any]] = None,
            targets: Optional[List[Text]] = None) -> Dict[Text, Any]:
        run_targets = targets if targets else self._graph_schema.target_names
        steps = self.plan(run_targets)
        # as in dask's graph: an input is the tuple (name, value) and replaces a node of the same name
        outputs: Dict[Text, Any] = {}
        if inputs:
            node_names = {name for name, _node, _needs in steps}
            for name, value in inputs.items():
                if isinstance(value, str) and value in node_names:
                    raise GraphRunError(
                        f"Input value '{value}' clashes with a node name. Make sure that none of the input names "
                        f"passed to the `run` method are the same as node names in the graph schema.")
                outputs[name] = (name, value)
        try:
            for name, node, needs in steps:
                if name not in outputs:
                    # a need nobody provides reaches the node as its bare name, as dask passes it
                    outputs[name] = node(*[outputs.get(need, need) for need in needs])
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e
        return dict(outputs[target] for target in run_targets)


def install_sequential_graph_runner() -> None:
    """Serve models with :class:`SequentialGraphRunner` (Rasa's processor loads every model through this name)."""
    import rasa.core.processor

    rasa.core.processor.DaskGraphRunner = SequentialGraphRunner
