// Masked-token labels (BERT / Geneformer pretraining): each gene token is selected with
// probability mlm_probability; a selected token's label is its id, and its input becomes
// <mask> (mask_fraction of the time), a random gene token (random_fraction; drawn
// uniformly from [first_gene_id, vocab_size)) or stays. Labels elsewhere stay -100.
// Special tokens (<cls>, <eos>, <pad>) are outside [begin, end) and never selected.
#include "transform/cell_rng.h"
#include "transform/cell_state.h"

namespace cellfeed::transform {

void MaskTokens(const RankOutput& o, int64_t vocab_size, uint64_t stream_key, int64_t* ids,
                int64_t* labels, int64_t begin, int64_t end) {
  CellRng rng(stream_key);
  const uint64_t n_genes = static_cast<uint64_t>(vocab_size - o.first_gene_id);
  const uint64_t selected = CellRng::BernoulliBound(o.mlm_probability);
  for (int64_t j = begin; j < end; ++j) {
    if (!rng.BernoulliBelow(selected)) continue;
    labels[j] = ids[j];
    const double u = rng.Uniform();
    if (u < o.mask_fraction) {
      ids[j] = o.mask_id;
    } else if (u < o.mask_fraction + o.random_fraction) {
      ids[j] = o.first_gene_id + static_cast<int64_t>(rng.Below(n_genes));
    }
  }
}

}  // namespace cellfeed::transform
