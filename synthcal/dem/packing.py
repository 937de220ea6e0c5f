"""The uncalendered coating: where the NMC particles sit and how the binder holds them.

A dried, uncalendered electrode is far looser than any packing of
frictional spheres (the paper's has ~32 % NMC by volume; random loose
packing is ~55 %): the particles are held apart by the carbon-binder domain
(CBD) that dried between them. So the coating is built geometrically, not
poured:

1. :func:`place_spheres`: random sequential addition (RSA), largest
   first, of non-overlapping spheres in the slab, a little denser than the
   target;
2. :func:`thin_to_fraction`: particles removed in random order until the
   NMC volume fraction in the analysed region (:class:`Region`) is the
   target; random removal keeps the size distribution;
3. :func:`sediment`: a particle with nothing under it settles onto the
   foil (in the wet slurry the heavy NMC particles sink until they rest
   on something);
4. :func:`binder_film_um`: the binder, spread as a film of uniform
   thickness t over every particle, has the volume the mass ratio gives
   (:func:`binder_volume_per_nmc_volume`);
5. :func:`dry`: drying pulls every cluster of particles whose films touch
   but hold to neither the foil nor the rest towards its nearest
   neighbour until the films meet (capillary necks form where films
   touch; a cluster held by nothing would not stay where the slurry left
   it);
6. :func:`bridges`: every pair of particles whose films overlap (surface
   gap below 2 t) is bonded by a binder bridge whose radius is that of the
   circle where the two film surfaces meet; a particle whose film reaches
   the foil (gap below t) is glued to it (:func:`glued_to_foil`).

So the count and the size of the bonds both follow the binder amount
(90:5:5 by mass and the CBD nanoporosity): more binder, thicker films,
more and wider bridges.

Every function here is vectorised over particles (numpy, scipy k-d trees).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from synthcal.dem.neighbours import candidate_pairs
from synthcal.materials import CARBON_BLACK_DENSITY_G_CM3, PVDF_DENSITY_G_CM3, mixture_density_g_cm3


def binder_volume_per_nmc_volume(particles):
    """Bulk CBD volume (nanopores included) per NMC particle volume.

    ``(m_carbon / rho_carbon + m_pvdf / rho_pvdf) / (1 - nanoporosity)``
    over ``m_nmc / rho_nmc``, with the skeletal densities of
    :mod:`synthcal.materials` (the same the phantom's attenuation uses).
    For 90:5:5, 50 % nanoporosity and 4650 kg/m³ NMC particles: 0.558.

    Parameters
    ----------
    particles : synthcal.scenario.Particles
    """
    m_nmc, m_carbon, m_pvdf = particles.mass_ratio_nmc_carbon_pvdf
    solid_g_cm3 = mixture_density_g_cm3({"C": m_carbon, "C2H2F2": m_pvdf},
                                        {"C": CARBON_BLACK_DENSITY_G_CM3, "C2H2F2": PVDF_DENSITY_G_CM3})
    cbd_kg_m3 = 1000.0 * solid_g_cm3 * (1.0 - particles.cbd_nanoporosity)
    return ((m_carbon + m_pvdf) / cbd_kg_m3) / (m_nmc / particles.nmc_density_kg_m3)


@dataclass(frozen=True)
class Region:
    """A vertical cylinder: the analysed region of the sample (µm).

    Attributes
    ----------
    centre_yx_um : (float, float)
        Axis position.
    radius_um : float
    z_lo_um, z_hi_um : float
        Bottom and top.
    """

    centre_yx_um: tuple
    radius_um: float
    z_lo_um: float
    z_hi_um: float

    @property
    def volume_um3(self):
        return math.pi * self.radius_um ** 2 * max(self.z_hi_um - self.z_lo_um, 0.0)

    def lattice_um(self, spacing_um):
        """Points of a cubic lattice of edge ``spacing_um`` inside the region, (P, 3) z-y-x."""
        h = float(spacing_um)
        r = self.radius_um
        z = np.arange(self.z_lo_um + 0.5 * h, self.z_hi_um, h)
        yx = np.arange(-r + 0.5 * h, r, h)
        yy, xx = np.meshgrid(yx, yx, indexing="ij")
        inside = yy ** 2 + xx ** 2 <= r * r
        disc = np.stack([yy[inside] + self.centre_yx_um[0], xx[inside] + self.centre_yx_um[1]], axis=1)
        return np.concatenate([np.repeat(z, len(disc))[:, None], np.tile(disc, (len(z), 1))], axis=1)


def region_volumes_um3(positions_um, radii_um, region, spacing_um):
    """Volume of each sphere inside ``region`` (µm³), counted on a lattice.

    Each sphere gets the lattice points (edge ``spacing_um``) inside it
    times the cell volume; the error of a sphere's count is zero on average
    and a fraction ``~ (spacing / radius)^2`` of it at most. Where spheres
    overlap (Hertz contacts), the lens is counted for both: a fraction
    ``~ (overlap / radius)^2`` of their volume.

    Parameters
    ----------
    positions_um : (N, 3) float array
        Centres, z-y-x.
    radii_um : (N,) float array
    region : Region
    spacing_um : float

    Returns
    -------
    (N,) float array
    """
    points = region.lattice_um(spacing_um)
    if len(points) == 0 or len(radii_um) == 0:
        return np.zeros(len(radii_um))
    counts = cKDTree(points).query_ball_point(np.asarray(positions_um, np.float64), np.asarray(radii_um, np.float64),
                                             return_length=True)
    return np.asarray(counts, np.float64) * spacing_um ** 3


def place_spheres(radii_um, box_um, rng, *, batch=32, tries=256, max_rounds=5000):
    """Random sequential addition of non-overlapping spheres in a box, largest first.

    The spheres are taken in order of decreasing radius, ``batch`` at a
    time; each gets ``tries`` uniform candidate centres at once and keeps
    the first that overlaps no placed sphere. Of the batch, the spheres are
    placed in order up to the first that found no room or overlaps an
    earlier one of the batch; that one and the rest try again in the next
    round. So the result is that of placing one sphere after the other.

    Parameters
    ----------
    radii_um : (N,) float array
    box_um : (3, 2) float array
        ``[[z_lo, z_hi], [y_lo, y_hi], [x_lo, x_hi]]``: every sphere lies inside.
    rng : numpy.random.Generator

    Returns
    -------
    (N, 3) float array
        Centres, z-y-x, in the order of ``radii_um``.

    Raises
    ------
    RuntimeError
        If some sphere finds no room after ``max_rounds`` rounds.
    """
    radii = np.asarray(radii_um, np.float64)
    box = np.asarray(box_um, np.float64)
    order = np.argsort(-radii, kind="stable")
    x = np.zeros((len(radii), 3))
    placed = np.zeros(len(radii), bool)
    todo = order
    for _ in range(max_rounds):
        if len(todo) == 0:
            return x
        b = todo[:batch]
        r = np.repeat(radii[b], tries)
        lo, hi = box[:, 0][None] + r[:, None], box[:, 1][None] - r[:, None]
        cand = lo + rng.random((len(r), 3)) * (hi - lo)
        free = np.ones(len(r), bool)
        done = np.flatnonzero(placed)
        if len(done):
            near = cKDTree(cand).sparse_distance_matrix(cKDTree(x[done]), r.max() + radii[done].max(),
                                                        output_type="ndarray")
            clash = near["v"] < r[near["i"]] + radii[done][near["j"]]
            free[near["i"][clash]] = False
        # the first free candidate of each sphere of the batch
        first = np.full(len(b), -1)
        hits = np.flatnonzero(free)[::-1]
        first[hits // tries] = hits
        ok = first >= 0
        cand = cand[np.maximum(first, 0)]
        ok[candidate_pairs(cand, radii[b], 0.0)[:, 1]] = False
        n_ok = int(np.argmin(ok)) if not ok.all() else len(b)
        x[b[:n_ok]] = cand[:n_ok]
        placed[b[:n_ok]] = True
        todo = todo[n_ok:]
    raise RuntimeError(f"random sequential addition found no room for {len(todo)} of {len(radii)} particles; "
                       "lower [electrode] nmc_volume_fraction")


def thin_to_fraction(region_volumes_um3, target_um3, rng):
    """Particles to keep so that their volume in the region is closest to ``target_um3``.

    Particles are removed in a random order (all of them, inside the region
    or not, so the whole slab thins alike) until the volume left in the
    region is closest to the target.

    Parameters
    ----------
    region_volumes_um3 : (N,) float array
        Volume of each particle inside the region.
    target_um3 : float
    rng : numpy.random.Generator

    Returns
    -------
    (N,) bool array
        Kept particles.
    """
    v = np.asarray(region_volumes_um3, np.float64)
    order = rng.permutation(len(v))
    left = v.sum() - np.concatenate([[0.0], np.cumsum(v[order])])  # after removing the first k
    k = int(np.argmin(np.abs(left - target_um3)))
    keep = np.ones(len(v), bool)
    keep[order[:k]] = False
    return keep


def sediment(positions_um, radii_um, gap_um, foil_z_um=0.0):
    """Particles with a free fall to the foil settle on it, ``gap_um`` above it.

    A particle falls freely when no other particle lies lower and overlaps
    its vertical shadow (lateral centre distance below the sum of radii):
    straight down it meets nothing but the foil.

    Parameters
    ----------
    positions_um : (N, 3) float array
    radii_um : (N,) float array
    gap_um : float
        Surface gap left to the foil.

    Returns
    -------
    (N, 3) float array
        New centres.
    """
    x = np.array(positions_um, np.float64)
    r = np.asarray(radii_um, np.float64)
    pairs = cKDTree(x[:, 1:]).query_pairs(2.0 * r.max(), output_type="ndarray")
    lateral = np.linalg.norm(x[pairs[:, 0], 1:] - x[pairs[:, 1], 1:], axis=1)
    pairs = pairs[lateral < r[pairs[:, 0]] + r[pairs[:, 1]]]
    upper = np.where(x[pairs[:, 0], 0] > x[pairs[:, 1], 0], pairs[:, 0], pairs[:, 1])
    free = np.ones(len(r), bool)
    free[upper] = False
    x[free, 0] = np.minimum(x[free, 0], foil_z_um + r[free] + gap_um)
    return x


def binder_film_um(radii_um, binder_um3):
    """Thickness t of a uniform binder film on every sphere holding ``binder_um3`` in all.

    Solves ``sum 4/3 pi ((R + t)^3 - R^3) = binder`` (a cubic with one
    positive root).
    """
    r = np.asarray(radii_um, np.float64)
    # 4/3 pi sum((R+t)^3 - R^3) = 4/3 pi (N t^3 + 3 t^2 sum R + 3 t sum R^2)
    coeffs = [len(r), 3.0 * r.sum(), 3.0 * np.sum(r ** 2), -3.0 * binder_um3 / (4.0 * math.pi)]
    roots = np.roots(coeffs)
    return float(max(z.real for z in roots if abs(z.imag) < 1e-9 * max(1.0, abs(z.real))))


def _gaps(positions, radii, pairs):
    return (np.linalg.norm(positions[pairs[:, 1]] - positions[pairs[:, 0]], axis=1)
            - radii[pairs[:, 0]] - radii[pairs[:, 1]])


def _clusters(positions, radii, film_um, foil_z_um):
    """Clusters of particles whose films touch (surface gap below 2 t); the foil (gap below t) is
    cluster ``label[n]``. Returns the label of every particle and of the foil, appended."""
    n = len(radii)
    pairs = candidate_pairs(positions, radii, 2.0 * film_um)
    on_foil = np.flatnonzero(positions[:, 0] - radii - foil_z_um < film_um)
    edges = np.concatenate([pairs, np.stack([on_foil, np.full(len(on_foil), n)], axis=1)])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n + 1, n + 1))
    return connected_components(graph, directed=False)[1]


def dry(positions_um, radii_um, film_um, box_um, rounds=8):
    """Drying: every cluster of particles held to no other moves until its film meets the nearest one's.

    Particles whose films touch (surface gap below 2 t) form clusters;
    the cluster that holds the foil (a film within t of it) stays. Every
    other cluster moves rigidly, straight towards the nearest surface of
    another cluster (a particle, or the foil at ``box_um[0, 0]``), until
    the gap is t (t/2 to the foil): capillary forces of the drying slurry
    pull it in; a cluster held by nothing would not stay where the slurry
    left it. Two clusters nearest to each other each move half the way; a
    move that would overlap a particle or leave the box is not made. Each
    round merges clusters; ``rounds`` rounds at most.

    Parameters
    ----------
    positions_um : (N, 3) float array
    radii_um : (N,) float array
    film_um : float
    box_um : (3, 2) float array
        As for :func:`place_spheres`.

    Returns
    -------
    (N, 3) float array
        New centres.
    """
    x = np.array(positions_um, np.float64)
    r = np.asarray(radii_um, np.float64)
    box = np.asarray(box_um, np.float64)
    n = len(r)
    k = min(n, 16)
    for _ in range(rounds):
        label = _clusters(x, r, film_um, box[0, 0])
        foil = label[n]
        free = np.flatnonzero(label[:n] != foil)
        if len(free) == 0 or n < 2:
            break
        # nearest surface of another cluster among each free particle's 16 nearest centres, or the foil
        dist, idx = cKDTree(x).query(x[free], k=k)
        dist, idx = dist.reshape(len(free), k), idx.reshape(len(free), k)
        gap = np.where(label[idx] == label[free][:, None], np.inf, dist - r[idx] - r[free][:, None])
        nn = np.argmin(gap, axis=1)
        partner, g = idx[np.arange(len(free)), nn], gap[np.arange(len(free)), nn]
        g_foil = x[free, 0] - r[free] - box[0, 0]
        to_foil = g_foil <= g
        step = np.where(to_foil, g_foil - 0.5 * film_um, g - film_um)
        direction = np.where(to_foil[:, None], [[-1.0, 0.0, 0.0]], x[partner] - x[free])
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        # each free cluster moves by the move of its particle nearest to another cluster
        nearest = np.where(to_foil, g_foil, g)
        order = np.lexsort((nearest, label[free]))
        first = np.ones(len(order), bool)
        first[1:] = label[free][order][1:] != label[free][order][:-1]
        lead = order[first]  # index into free of each cluster's leading particle
        target = np.where(to_foil[lead], foil, label[partner[lead]])
        share = np.ones(len(lead))
        cluster_lead = -np.ones(n + 1, np.int64)
        cluster_lead[label[free][lead]] = np.arange(len(lead))
        mutual = (~to_foil[lead]) & (cluster_lead[target] >= 0)
        mutual[mutual] = target[cluster_lead[target[mutual]]] == label[free][lead][mutual]
        share[mutual] = 0.5
        move = np.zeros((n + 1, 3))
        move[label[free][lead]] = (share * step[lead])[:, None] * direction[lead]
        old = x.copy()
        x = x + move[label[:n]]
        # undo the moves of clusters that made an overlap or left the box
        bad = np.zeros(n, bool)
        bad[candidate_pairs(x, r, 0.0).ravel()] = True
        bad |= np.any((x - r[:, None] < box[:, 0]) | (x + r[:, None] > box[:, 1]), axis=1)
        undo = np.zeros(n + 1, bool)
        undo[label[:n][bad & (np.abs(move[label[:n]]).sum(axis=1) > 0)]] = True
        x[undo[label[:n]]] = old[undo[label[:n]]]
    return x


def bridges(positions_um, radii_um, film_um):
    """Binder bridges: every pair whose films overlap, with the radius of the circle where they meet.

    Two spheres of radii R1, R2 at centre distance d carry films to
    ``R1 + t`` and ``R2 + t``; when ``d < R1 + R2 + 2 t`` the film surfaces
    meet on a circle of radius ``a = sqrt((R1 + t)^2 - s^2)``,
    ``s = (d^2 + (R1 + t)^2 - (R2 + t)^2) / (2 d)``, capped at the smaller
    particle's radius: the neck the bridge is.

    Returns
    -------
    pairs : (M, 2) int array
        ``i < j``, sorted.
    radii_um : (M,) float array
        Bridge radii (µm), > 0.
    """
    x = np.asarray(positions_um, np.float64)
    r = np.asarray(radii_um, np.float64)
    pairs = candidate_pairs(x, r, 2.0 * film_um)
    d = np.linalg.norm(x[pairs[:, 1]] - x[pairs[:, 0]], axis=1)
    r1, r2 = r[pairs[:, 0]] + film_um, r[pairs[:, 1]] + film_um
    s = (d ** 2 + r1 ** 2 - r2 ** 2) / (2.0 * d)
    a = np.sqrt(np.maximum(r1 ** 2 - s ** 2, 0.0))
    a = np.minimum(a, np.minimum(r[pairs[:, 0]], r[pairs[:, 1]]))
    ok = a > 0
    return pairs[ok], a[ok]


def glued_to_foil(positions_um, radii_um, film_um, foil_z_um=0.0):
    """Particles whose binder film reaches the foil (surface gap below t)."""
    x = np.asarray(positions_um, np.float64)
    return x[:, 0] - np.asarray(radii_um) - foil_z_um < film_um
