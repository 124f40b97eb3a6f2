modalrec demo --out demo --fast-features --set epochs=10  # build the shop, train bpr, lightgcn, vbpr, contentmf, compare
modalrec data info demo/data/shop-fast                    # users, items, split, modalities
modalrec train --data demo/data/shop-fast --model lens --out runs/lens  # closed form: no epochs
modalrec evaluate --run runs/lens --cold-items            # recall on items nobody bought in training
modalrec recommend --run demo/runs/vbpr --user U0001 -k 5
modalrec explain --run demo/runs/vbpr --user U0001 -k 5   # how much image and text each item owes
modalrec benchmark --data demo/data/shop-fast --models bpr,vbpr --seeds 2 --set epochs=10 --out bench
modalrec runs compare demo/runs/vbpr runs/lens            # what differs: config, data, versions, metrics
